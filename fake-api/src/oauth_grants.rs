//! Grants awaiting redemption at the token endpoint: authorization codes (PKCE S256)
//! and device codes (RFC 8628), with the checks a redemption or a poll goes through.

use super::paging::Params;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

pub(crate) const AUTHORIZATION_CODE: &str = "authorization_code";
pub(crate) const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Authorization codes live five minutes, as Constant Contact's do.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(300);
/// RFC 8628 §3.5: every `slow_down` raises the polling interval by five seconds.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// Pending authorization codes and device codes.
#[derive(Default)]
pub(crate) struct Flows {
    pub codes: HashMap<String, CodeGrant>,
    /// Keyed by device code; redeemed entries stay so their poll log can be inspected.
    pub devices: HashMap<String, Device>,
    pub deny_consent: bool,
}

pub(crate) struct CodeGrant {
    pub client: &'static str,
    pub challenge: String,
    pub redirect_uri: String,
    pub scope: String,
    pub expires: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Pending,
    Approved,
    Denied,
    Redeemed,
}

pub(crate) struct Device {
    pub client: &'static str,
    pub user_code: String,
    pub scope: String,
    pub issued: Instant,
    pub expires: Instant,
    pub interval: Duration,
    pub decision: Decision,
    pub last_poll: Option<Instant>,
    pub polls: Vec<Duration>,
    pub force_slow_down: bool,
    pub slow_downs: usize,
}

/// An OAuth error for the token endpoint: code and description.
pub(crate) type GrantError = (&'static str, &'static str);

impl Flows {
    /// Redeems an authorization code or polls a device code for `client` (the
    /// authenticated client of the token request); the granted scope on success.
    pub(crate) fn redeem(
        &mut self,
        grant: &str,
        form: &Params,
        client: &str,
    ) -> Result<String, GrantError> {
        let now = Instant::now();
        if grant == AUTHORIZATION_CODE {
            self.redeem_code(form, client, now)
        } else {
            let code = form.get("device_code").ok_or((
                "invalid_request",
                "The request is missing the required parameter 'device_code'.",
            ))?;
            self.poll_device(code, client, now)
        }
    }

    fn redeem_code(
        &mut self,
        form: &Params,
        client: &str,
        now: Instant,
    ) -> Result<String, GrantError> {
        let code = form.get("code").ok_or((
            "invalid_request",
            "The request is missing the required parameter 'code'.",
        ))?;
        // Removed on first presentation: a code is single-use whatever happens next.
        let grant = self
            .codes
            .remove(code)
            .filter(|g| now < g.expires && g.client == client)
            .ok_or((
                "invalid_grant",
                "The authorization code is invalid or has expired.",
            ))?;
        if form.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err((
                "invalid_grant",
                "The 'redirect_uri' does not match the redirection URI used in the authorization request.",
            ));
        }
        let verifier = form.get("code_verifier").ok_or((
            "invalid_request",
            "PKCE code verifier is required when the authorization request included a code challenge.",
        ))?;
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
            return Err(("invalid_grant", "PKCE verification failed."));
        }
        Ok(grant.scope)
    }

    fn poll_device(
        &mut self,
        code: &str,
        client: &str,
        now: Instant,
    ) -> Result<String, GrantError> {
        let device = self
            .devices
            .get_mut(code)
            .filter(|d| d.client == client)
            .ok_or(("invalid_grant", "The device code is invalid."))?;
        let previous = device.last_poll.replace(now);
        device.polls.push(now - device.issued);
        if now >= device.expires {
            return Err(("expired_token", "The device code has expired."));
        }
        let too_fast = previous.is_some_and(|at| now - at < device.interval);
        if device.force_slow_down || too_fast {
            device.force_slow_down = false;
            device.interval += SLOW_DOWN_STEP;
            device.slow_downs += 1;
            return Err(("slow_down", "The client is polling too frequently."));
        }
        match device.decision {
            Decision::Pending => Err((
                "authorization_pending",
                "The device authorization is pending. Please try again later.",
            )),
            Decision::Denied => Err(("access_denied", "The resource owner denied the request.")),
            Decision::Redeemed => Err(("invalid_grant", "The device code was already used.")),
            Decision::Approved => {
                device.decision = Decision::Redeemed;
                Ok(device.scope.clone())
            }
        }
    }
}
