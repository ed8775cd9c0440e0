//! Where the authorization response arrives: a listener on a loopback redirect URI
//! (RFC 8252), or the redirect URL pasted on stdin. Both are accepted with a loopback
//! URI, so a browser on another machine still works: paste what its address bar shows.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use url::{Host, Url};

/// The query of the redirect: a code, or an error, and the state.
pub struct AuthorizationResponse {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl AuthorizationResponse {
    fn from_query(query: &str) -> Self {
        let get = |key: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        AuthorizationResponse {
            code: get("code"),
            state: get("state"),
            error: get("error"),
            error_description: get("error_description"),
        }
    }
}

type Sender = mpsc::UnboundedSender<Result<AuthorizationResponse>>;

pub struct Receiver {
    responses: mpsc::UnboundedReceiver<Result<AuthorizationResponse>>,
    server: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

pub fn is_loopback(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(name)) => name == "localhost",
            None => false,
        }
}

/// Starts waiting for the response to `redirect`: serves it when it is a loopback URI
/// (port 0 is replaced by the port bound), and reads a pasted URL from stdin.
pub async fn listen(redirect: &mut Url) -> Result<Receiver> {
    let (tx, responses) = mpsc::unbounded_channel();
    let server = if is_loopback(redirect) {
        Some(serve(redirect, tx.clone()).await?)
    } else {
        None
    };
    read_pasted(redirect.clone(), tx, server.is_none());
    Ok(Receiver { responses, server })
}

impl Receiver {
    pub async fn next(&mut self) -> Result<AuthorizationResponse> {
        match self.responses.recv().await {
            Some(response) => response,
            None => bail!("no authorization response can arrive any more"),
        }
    }

    /// Stops the listener once the browser has had its page.
    pub async fn close(self) {
        if let Some((stop, server)) = self.server {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
    }
}

async fn serve(
    redirect: &mut Url,
    tx: Sender,
) -> Result<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)> {
    let ip = match redirect.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = redirect.port_or_known_default().unwrap_or(80);
    let listener = TcpListener::bind((ip, port)).await.with_context(|| {
        format!("cannot listen on {ip}:{port} for the redirect URI {redirect} (is another auth running?)")
    })?;
    if port == 0 {
        let bound = listener.local_addr()?.port();
        redirect
            .set_port(Some(bound))
            .map_err(|()| anyhow!("cannot set the port of {redirect}"))?;
    }
    let path = redirect.path().to_string();
    let (stop, mut stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        connections.spawn(answer(stream, path.clone(), tx.clone()));
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Like a graceful shutdown: no new connections, the open ones finish.
        drop(listener);
        while connections.join_next().await.is_some() {}
    });
    Ok((stop, server))
}

/// Largest request head the listener reads; a redirect's is far smaller.
const MAX_HEAD: usize = 16 * 1024;

/// Answers one HTTP/1.1 request on the listener, then closes the connection: the
/// redirect's `GET <path>?<query>` gets the page, anything else a 404 or 405. Only the
/// request line matters (a redirect is a GET without a body), so this needs no HTTP
/// server library.
async fn answer(mut stream: TcpStream, path: String, tx: Sender) {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let complete = tokio::time::timeout(Duration::from_secs(10), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await
    .unwrap_or(false);
    if !complete {
        return;
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default();
    let target = request_line.next().unwrap_or_default();
    let (target_path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, content_type, body) = if target_path != path {
        ("404 Not Found", "text/plain; charset=utf-8", String::new())
    } else if method != "GET" {
        (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            String::new(),
        )
    } else {
        ("200 OK", "text/html; charset=utf-8", callback(&tx, query))
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Hands the redirect's query to the flow and returns the page the browser shows.
fn callback(tx: &Sender, query: &str) -> String {
    let response = AuthorizationResponse::from_query(query);
    let page = match &response.error {
        Some(error) => format!(
            "<h1>Authorization failed</h1><p>{}. Details are in the terminal.</p>",
            escape(error)
        ),
        None => "<h1>Authorization received</h1><p>You can close this tab and return to the \
                 terminal.</p>"
            .to_string(),
    };
    let _ = tx.send(Ok(response));
    format!("<!doctype html><title>source-constant-contact</title>{page}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Reads the first non-blank line of stdin as the URL the browser was redirected to.
/// When it is the only source, end of input is an error.
fn read_pasted(redirect: Url, tx: Sender, only_source: bool) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            let text = line.trim().trim_matches(['"', '\'']);
            if !text.is_empty() {
                let _ = tx.send(pasted(&redirect, text));
                return;
            }
        }
        if only_source {
            let _ = tx.send(Err(anyhow!(
                "stdin ended before the redirect URL was pasted"
            )));
        }
    });
}

/// The pasted URL's response; it must be the redirect URI plus a query. The pasted text
/// holds the code, so it is never repeated in an error.
fn pasted(redirect: &Url, text: &str) -> Result<AuthorizationResponse> {
    let url = Url::parse(text).map_err(|_| {
        anyhow!("what was pasted is not a URL: paste the whole address the browser ended on")
    })?;
    let same = url.scheme() == redirect.scheme()
        && url.host_str() == redirect.host_str()
        && url.port_or_known_default() == redirect.port_or_known_default()
        && url.path() == redirect.path();
    if !same {
        bail!(
            "the pasted URL is not at the redirect URI {redirect}: paste the address the browser \
             was sent to after you consented"
        );
    }
    Ok(AuthorizationResponse::from_query(
        url.query().unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_recognised() {
        for uri in [
            "http://127.0.0.1:0/callback",
            "http://localhost/cb",
            "http://[::1]:8/",
        ] {
            assert!(is_loopback(&Url::parse(uri).unwrap()), "{uri}");
        }
        for uri in ["https://127.0.0.1/callback", "http://example.com/callback"] {
            assert!(!is_loopback(&Url::parse(uri).unwrap()), "{uri}");
        }
    }

    #[test]
    fn pasted_url_must_be_the_redirect_uri() {
        let redirect = Url::parse("https://app.example.com/oauth/callback").unwrap();
        let ok = pasted(
            &redirect,
            "https://app.example.com/oauth/callback?code=c&state=s",
        )
        .unwrap();
        assert_eq!(
            (ok.code.as_deref(), ok.state.as_deref()),
            (Some("c"), Some("s"))
        );
        let wrong = pasted(&redirect, "https://app.example.com/other?code=secret-code");
        let message = format!("{:#}", wrong.err().unwrap());
        assert!(message.contains("redirect URI") && !message.contains("secret-code"));
        assert!(pasted(&redirect, "not a url").is_err());
    }

    /// Sends one raw HTTP/1.1 request to the listener and returns the whole answer.
    async fn request(port: u16, request: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn listener_answers_only_a_get_of_the_redirect_path() {
        let mut redirect = Url::parse("http://127.0.0.1:0/callback").unwrap();
        let (tx, mut responses) = mpsc::unbounded_channel();
        let (stop, server) = serve(&mut redirect, tx).await.unwrap();
        let port = redirect
            .port()
            .expect("port 0 was replaced by the bound one");

        let favicon = request(port, "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(favicon.starts_with("HTTP/1.1 404 "), "{favicon}");
        let post = request(port, "POST /callback?code=c HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(
            responses.try_recv().is_err(),
            "only the redirect's GET counts"
        );

        let page = request(
            port,
            "GET /callback?code=c&state=s HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n",
        )
        .await;
        assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
        assert!(page.contains("text/html") && page.contains("Authorization received"));
        let response = responses.recv().await.unwrap().unwrap();
        assert_eq!(
            (response.code.as_deref(), response.state.as_deref()),
            (Some("c"), Some("s"))
        );

        let denied = request(
            port,
            "GET /callback?error=access_denied&state=s HTTP/1.1\r\n\r\n",
        )
        .await;
        assert!(denied.contains("Authorization failed") && denied.contains("access_denied"));

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .expect("the listener stops")
            .unwrap();
    }
}
