//! Device authorization grant (RFC 8628): print the verification URL and user code,
//! then poll the token endpoint at the interval the server asks for (oauth2 handles
//! `authorization_pending` and adds 5 s on `slow_down`) until approval, denial or expiry.

use std::cell::Cell;
use std::time::Duration;

use anyhow::{anyhow, Result};
use oauth2::basic::BasicTokenResponse;
use oauth2::{DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse};

use super::{token_error, AuthorizeArgs, Client};

/// Polling goes on this long past the code's lifetime, so the server's own
/// `expired_token` normally ends it.
const EXPIRY_GRACE: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub async fn run(
    args: &AuthorizeArgs,
    client: Client,
    public: bool,
    http: &reqwest::Client,
    scopes: Vec<Scope>,
) -> Result<BasicTokenResponse> {
    let client = client
        .set_device_authorization_url(DeviceAuthorizationUrl::from_url(args.device_url.clone()));
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(scopes)
        .request_async(http)
        .await
        .map_err(|e| token_error(&args.device_url, e, public))?;
    eprintln!(
        "On any device with a browser, open\n\n  {}\n\nand enter the code\n\n  {}\n",
        details.verification_uri().as_str(),
        details.user_code().secret()
    );
    if let Some(complete) = details.verification_uri_complete() {
        eprintln!("(or open {} directly)", complete.secret());
    }
    let wait = args.timeout().min(details.expires_in());
    eprintln!(
        "Waiting up to {} s for the sign-in (polling every {} s)...",
        wait.as_secs(),
        details.interval().as_secs()
    );
    let interval = Cell::new(details.interval());
    let sleep = |next: Duration| {
        if next > interval.replace(next) {
            eprintln!(
                "Now polling every {} s (the server asked to slow down, or did not answer).",
                next.as_secs()
            );
        }
        tokio::time::sleep(next)
    };
    let poll = client
        .exchange_device_access_token(&details)
        // After a network error oauth2 doubles the interval up to this cap; its default
        // (10 s) could undercut an interval the server raised.
        .set_max_backoff_interval(MAX_BACKOFF)
        .request_async(http, sleep, Some(details.expires_in() + EXPIRY_GRACE));
    match tokio::time::timeout(args.timeout(), poll).await {
        Ok(result) => result.map_err(|e| token_error(&args.token_url, e, public)),
        Err(_) => Err(anyhow!(
            "timed out after {} s waiting for the sign-in with code {} to be approved",
            args.timeout,
            details.user_code().secret()
        )),
    }
}
