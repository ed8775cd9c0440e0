//! Authorization code with PKCE (S256): print (and open) the authorize URL, wait for
//! the redirect, check its state, exchange the code with the verifier.

use anyhow::{anyhow, bail, Result};
use oauth2::basic::BasicTokenResponse;
use oauth2::{AuthUrl, AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};

use super::callback::{self, AuthorizationResponse};
use super::{browser, token_error, AuthorizeArgs, Client};

pub async fn run(
    args: &AuthorizeArgs,
    client: Client,
    public: bool,
    http: &reqwest::Client,
    scopes: Vec<Scope>,
) -> Result<BasicTokenResponse> {
    let mut redirect = args.redirect_uri.clone();
    let mut responses = callback::listen(&mut redirect).await?;
    let client = client
        .set_auth_uri(AuthUrl::from_url(args.authorize_url.clone()))
        .set_redirect_uri(RedirectUrl::from_url(redirect.clone()));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes)
        .set_pkce_challenge(challenge)
        .url();
    eprintln!(
        "Open this URL in a browser, sign in to Constant Contact and allow access:\n\n  {url}\n"
    );
    if callback::is_loopback(&redirect) {
        eprintln!(
            "Waiting up to {} s for the browser to come back to {redirect}\n\
             (if the browser runs on another machine, paste the address it ends on here).",
            args.timeout
        );
    } else {
        eprintln!("After allowing access, paste the address the browser ends on ({redirect}?code=…) here:");
    }
    if !args.no_browser {
        browser::open(url.as_str());
    }
    let response = tokio::time::timeout(args.timeout(), responses.next()).await;
    responses.close().await;
    let response = response.map_err(|_| {
        anyhow!(
            "timed out after {} s waiting for the authorization response. If the browser showed \
             an error, check that {redirect} is registered as the application's redirect URI",
            args.timeout
        )
    })??;
    let code = authorized_code(response, state.secret())?;
    client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .map_err(|e| token_error(&args.token_url, e, public))
}

/// The code of a response to this request (same state), or why there is none.
fn authorized_code(response: AuthorizationResponse, state: &str) -> Result<String> {
    if response.state.as_deref() != Some(state) {
        bail!(
            "state mismatch: the authorization response does not belong to this request (a stale \
             browser tab, or a forged redirect); nothing was written. Run auth again"
        );
    }
    let detail = response
        .error_description
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    match (response.error.as_deref(), response.code) {
        (Some("access_denied"), _) => {
            bail!("consent was denied (access_denied{detail}); nothing was written")
        }
        (Some(error), _) => bail!("authorization failed ({error}{detail})"),
        (None, Some(code)) if !code.is_empty() => Ok(code),
        (None, _) => bail!("the authorization response carries no code"),
    }
}
