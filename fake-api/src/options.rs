//! The sandbox's command-line options and their limits.

#[derive(Debug, Clone, clap::Args)]
pub struct SandboxOptions {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Number of contacts to generate.
    #[arg(long, default_value_t = 1000)]
    pub contacts: usize,
    /// Number of email campaigns to generate, in the default account's mix of
    /// statuses (sent, drafts, scheduled, removed, one executing, one in error).
    #[arg(long, default_value_t = DEFAULT_CAMPAIGNS)]
    pub campaigns: usize,
    /// Seed for all generated data and credentials.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Delay added to every API response.
    #[arg(long = "latency-ms", default_value_t = 0)]
    pub latency_ms: u64,
    /// API requests per second allowed per API key (OAuth client), shared by all its
    /// access tokens; more get 429 (`throttled`).
    #[arg(long, default_value_t = 4)]
    pub rps: u32,
    /// API requests allowed per API key each UTC day (the count starts again at 00:00
    /// UTC on the sandbox's clock); more get 429 (`quota_exceeded`). 0 is allowed and
    /// means the quota is already spent: every API request gets 429.
    #[arg(long = "daily-limit", default_value_t = 10_000)]
    pub daily_limit: u32,
    /// Token endpoint requests per second allowed per client; more get 429. Constant
    /// Contact's authorization server allows about one.
    #[arg(long = "token-rps", default_value_t = 1)]
    pub token_rps: u32,
    /// Lifetime of issued access tokens.
    #[arg(long = "token-ttl-secs", default_value_t = 86_400)]
    pub token_ttl_secs: u64,
    /// Whether a refresh rotates the refresh token (Constant Contact's default:
    /// every earlier one dies) or returns the same long-lived one.
    #[arg(long = "refresh-tokens", value_enum, default_value_t = RefreshTokens::Rotating)]
    pub refresh_tokens: RefreshTokens,
    /// Redirect URI registered for the OAuth client (repeatable), besides loopback
    /// `http://127.0.0.1:<any port>/callback`.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Polling interval the device flow asks clients to keep.
    #[arg(long = "device-interval-secs", default_value_t = 5)]
    pub device_interval_secs: u64,
    /// Lifetime of device codes.
    #[arg(long = "device-code-ttl-secs", default_value_t = 600)]
    pub device_code_ttl_secs: u64,
    /// A user privilege the token's user lacks (repeatable, e.g. `campaign:read`):
    /// `/account/user/privileges` leaves it out and the endpoints that need it answer 403.
    #[arg(long = "without-privilege")]
    pub without_privileges: Vec<String>,
}

/// Largest `--contacts`: beyond it generating and holding the data takes minutes and GBs.
pub const MAX_CONTACTS: usize = 1_000_000;
/// The default account's campaigns: one round of the status mix.
pub const DEFAULT_CAMPAIGNS: usize = 30;
/// Largest `--campaigns`: every sent one carries a tracking simulation.
pub const MAX_CAMPAIGNS: usize = 3_000;
/// Largest `--latency-ms`: one minute, already past most HTTP clients' timeouts.
pub const MAX_LATENCY_MS: u64 = 60_000;
/// Largest `--token-ttl-secs`: one year.
pub const MAX_TOKEN_TTL_SECS: u64 = 365 * 86_400;
/// Largest `--device-code-ttl-secs`: one day.
pub const MAX_DEVICE_CODE_TTL_SECS: u64 = 86_400;

impl SandboxOptions {
    /// Refuses options the sandbox cannot work with. `Sandbox::start` (and so
    /// `serve_forever` and both binaries) calls it first.
    pub fn validate(&self) -> anyhow::Result<()> {
        let fail = |msg: String| Err(anyhow::anyhow!("invalid sandbox option: {msg}"));
        if self.rps == 0 {
            return fail("--rps must be at least 1 (0 would refuse every request)".into());
        }
        if self.token_rps == 0 {
            return fail(
                "--token-rps must be at least 1 (0 would refuse every token request)".into(),
            );
        }
        if self.contacts > MAX_CONTACTS {
            return fail(format!(
                "--contacts must be at most {MAX_CONTACTS}, got {}",
                self.contacts
            ));
        }
        if !(1..=MAX_CAMPAIGNS).contains(&self.campaigns) {
            return fail(format!(
                "--campaigns must be from 1 to {MAX_CAMPAIGNS}, got {}",
                self.campaigns
            ));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return fail(format!(
                "--latency-ms must be at most {MAX_LATENCY_MS}, got {}",
                self.latency_ms
            ));
        }
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&self.token_ttl_secs) {
            return fail(format!(
                "--token-ttl-secs must be from 1 to {MAX_TOKEN_TTL_SECS}, got {} \
                 (0 would issue access tokens that are already expired)",
                self.token_ttl_secs
            ));
        }
        if !(1..=MAX_DEVICE_CODE_TTL_SECS).contains(&self.device_code_ttl_secs) {
            return fail(format!(
                "--device-code-ttl-secs must be from 1 to {MAX_DEVICE_CODE_TTL_SECS}, got {}",
                self.device_code_ttl_secs
            ));
        }
        if self.device_interval_secs >= self.device_code_ttl_secs {
            return fail(format!(
                "--device-interval-secs ({}) must be below --device-code-ttl-secs ({}): \
                 the device code would expire before the first poll",
                self.device_interval_secs, self.device_code_ttl_secs
            ));
        }
        let privileges: Vec<&str> = super::data::PRIVILEGES.iter().map(|(_, p)| *p).collect();
        for privilege in &self.without_privileges {
            if !privileges.contains(&privilege.as_str()) {
                return fail(format!(
                    "--without-privilege takes one of {}, got '{privilege}'",
                    privileges.join(", ")
                ));
            }
        }
        for uri in &self.redirect_uris {
            if url::Url::parse(uri).is_err() {
                return fail(format!(
                    "--redirect-uri must be an absolute URL, got '{uri}'"
                ));
            }
        }
        Ok(())
    }
}

/// What the token endpoint's refresh-token grant does with the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RefreshTokens {
    /// Each refresh returns a new refresh token and invalidates every earlier one.
    Rotating,
    /// Each refresh returns the same refresh token, which stays valid.
    LongLived,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            port: 0,
            contacts: 1000,
            campaigns: DEFAULT_CAMPAIGNS,
            seed: 42,
            latency_ms: 0,
            rps: 4,
            token_rps: 1,
            daily_limit: 10_000,
            token_ttl_secs: 86_400,
            refresh_tokens: RefreshTokens::Rotating,
            redirect_uris: Vec::new(),
            device_interval_secs: 5,
            device_code_ttl_secs: 600,
            without_privileges: Vec::new(),
        }
    }
}
