//! The `source-constant-contact` binary: the command line of the library.

fn main() {
    std::process::exit(source_constant_contact::cli::main());
}
