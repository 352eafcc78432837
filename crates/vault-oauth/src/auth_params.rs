//! Authorization request parameters a person adds to a login
//! (`--auth-param KEY=VALUE`, `--prompt VALUE`): checked against the ones
//! the flow sets itself, merged over the provider's defaults. Pure.

use crate::plan::{LoginPlan, PlanError};

/// Parameters the browser flows set themselves: replacing one would break
/// the flow (the redirect, PKCE and `state` bind the answer to this login).
const RESERVED: [&str; 6] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// The `prompt` values of OpenID Connect Core §3.1.2.1.
pub const PROMPT_VALUES: [&str; 4] = ["none", "login", "consent", "select_account"];

/// What a person adds to the authorization request of a browser login.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthParams {
    /// `KEY=VALUE` pairs in the order given. A key replaces the provider's
    /// default parameter of that name (e.g. Google's `access_type`); an
    /// empty value sends no parameter of that name; a key given twice with
    /// values is sent twice (e.g. RFC 8707 `resource`).
    pub params: Vec<(String, String)>,
    /// The OpenID Connect `prompt`: [`PROMPT_VALUES`], space-separated
    /// (`none` alone); empty: send no `prompt`.
    pub prompt: Option<String>,
}

impl AuthParams {
    /// Whether nothing was given.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty() && self.prompt.is_none()
    }

    /// Reads one `KEY=VALUE` (split at the first `=`).
    pub fn parse_pair(text: &str) -> Result<(String, String), String> {
        let (key, value) = text.split_once('=').ok_or_else(|| {
            "expected KEY=VALUE (KEY= with nothing after it sends none)".to_owned()
        })?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the key must be printable ASCII without spaces".to_owned());
        }
        if value.chars().any(char::is_control) {
            return Err("the value must not hold control characters".to_owned());
        }
        Ok((key.to_owned(), value.to_owned()))
    }
}

/// Checks a `--prompt` value and returns it with single spaces.
pub fn check_prompt(value: &str) -> Result<String, PlanError> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if let Some(bad) = words.iter().find(|w| !PROMPT_VALUES.contains(w)) {
        return Err(PlanError::Usage(format!(
            "--prompt {bad:?} is not an OpenID Connect prompt value: use {} (several separated \
             by spaces), or --auth-param prompt=VALUE to send another value unchecked",
            PROMPT_VALUES.join(", ")
        )));
    }
    let repeated = words
        .iter()
        .enumerate()
        .any(|(i, w)| words[..i].contains(w));
    if repeated || (words.contains(&"none") && words.len() > 1) {
        return Err(PlanError::Usage(
            "--prompt: each value once, and none only alone (OpenID Connect Core 3.1.2.1)"
                .to_owned(),
        ));
    }
    Ok(words.join(" "))
}

fn reserved_key(key: &str) -> Option<String> {
    if key.eq_ignore_ascii_case("scope") {
        return Some("--auth-param scope=...: give the scopes with --scope SCOPE".to_owned());
    }
    RESERVED
        .iter()
        .any(|r| key.eq_ignore_ascii_case(r))
        .then(|| {
            format!(
                "--auth-param {key}=...: tokvault sets {key} itself in every browser login (the \
                 redirect, PKCE and state bind the answer to this login); leave it out"
            )
        })
}

/// The person's parameters with `--prompt` folded in, checked.
fn given_params(given: &AuthParams) -> Result<Vec<(String, String)>, PlanError> {
    let mut params = given.params.clone();
    if let Some(message) = params.iter().find_map(|(key, _)| reserved_key(key)) {
        return Err(PlanError::Usage(message));
    }
    let prompts = params.iter().filter(|(key, _)| key == "prompt").count();
    if prompts > 1 {
        return Err(PlanError::Usage(
            "--auth-param prompt=... is given twice: prompt is one parameter (several values \
             go in one, separated by spaces: --prompt 'select_account consent')"
                .to_owned(),
        ));
    }
    if let Some(prompt) = &given.prompt {
        if prompts > 0 {
            return Err(PlanError::Usage(
                "--prompt and --auth-param prompt=... both set prompt: give one of them".to_owned(),
            ));
        }
        params.push(("prompt".to_owned(), check_prompt(prompt)?));
    }
    Ok(params)
}

impl LoginPlan {
    /// The plan with the person's authorization request parameters over
    /// the provider's defaults. The device flow (`device`) sends no
    /// authorization request, so any parameter given is refused there.
    pub fn with_auth_params(mut self, given: &AuthParams, device: bool) -> Result<Self, PlanError> {
        if given.is_empty() {
            return Ok(self);
        }
        if device {
            return Err(PlanError::Usage(
                "--auth-param and --prompt go into the browser's authorization request, and the \
                 device flow (RFC 8628) sends none: leave them out with --device, or use the \
                 browser (default) or --no-browser"
                    .to_owned(),
            ));
        }
        let params = given_params(given)?;
        self.extra_params
            .retain(|(key, _)| !params.iter().any(|(given, _)| given == key));
        self.extra_params
            .extend(params.into_iter().filter(|(_, value)| !value.is_empty()));
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{LoginInputs, LoginProvider};

    fn plan(provider: LoginProvider, scopes: &[&str]) -> LoginPlan {
        LoginPlan::resolve(LoginInputs {
            provider: Some(provider),
            client_id: Some("client".to_owned()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            auth_url: Some("https://auth.example/authorize".to_owned()),
            token_url: Some("https://auth.example/token".to_owned()),
            ..LoginInputs::default()
        })
        .expect("plan")
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn usage_of(result: Result<LoginPlan, PlanError>) -> String {
        match result {
            Err(PlanError::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn a_pair_is_split_at_the_first_equals_sign() {
        assert_eq!(
            AuthParams::parse_pair("login_hint=a=b@example.com"),
            Ok(("login_hint".to_owned(), "a=b@example.com".to_owned()))
        );
        assert_eq!(
            AuthParams::parse_pair("prompt="),
            Ok(("prompt".to_owned(), String::new()))
        );
        for bad in ["prompt", "=consent", "pro mpt=x", "k=a\nb"] {
            assert!(AuthParams::parse_pair(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prompt_takes_the_openid_values_alone_or_combined() {
        assert_eq!(check_prompt("consent").as_deref(), Ok("consent"));
        assert_eq!(
            check_prompt(" select_account  consent ").as_deref(),
            Ok("select_account consent")
        );
        assert_eq!(check_prompt("").as_deref(), Ok(""));
        for bad in ["Consent", "create", "none login", "consent consent"] {
            assert!(
                matches!(check_prompt(bad), Err(PlanError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parameters_the_flow_sets_are_refused() {
        for key in [
            "state",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "response_type",
            "client_id",
            "Client_ID",
            "scope",
        ] {
            let given = AuthParams {
                params: pairs(&[(key, "x")]),
                prompt: None,
            };
            let message =
                usage_of(plan(LoginProvider::Generic, &[]).with_auth_params(&given, false));
            assert!(message.contains(key), "{message}");
        }
    }

    #[test]
    fn given_parameters_replace_the_defaults_and_an_empty_value_drops_one() {
        let given = AuthParams {
            params: pairs(&[
                ("resource", "https://a.example"),
                ("resource", "https://b.example"),
                ("access_type", ""),
            ]),
            prompt: Some("select_account consent".to_owned()),
        };
        let google = plan(LoginProvider::Google, &["mail"])
            .with_auth_params(&given, false)
            .expect("plan");
        assert_eq!(
            google.extra_params,
            pairs(&[
                ("resource", "https://a.example"),
                ("resource", "https://b.example"),
                ("prompt", "select_account consent"),
            ])
        );
        let none = AuthParams {
            params: Vec::new(),
            prompt: Some(String::new()),
        };
        let generic = plan(LoginProvider::Generic, &["offline_access"]);
        assert_eq!(generic.extra_params, pairs(&[("prompt", "consent")]));
        let generic = generic.with_auth_params(&none, false).expect("plan");
        assert!(
            generic.extra_params.is_empty(),
            "{:?}",
            generic.extra_params
        );
    }

    #[test]
    fn prompt_is_given_once_and_never_to_the_device_flow() {
        let both = AuthParams {
            params: pairs(&[("prompt", "consent")]),
            prompt: Some("consent".to_owned()),
        };
        let message = usage_of(plan(LoginProvider::Generic, &[]).with_auth_params(&both, false));
        assert!(message.contains("give one of them"), "{message}");
        let twice = AuthParams {
            params: pairs(&[("prompt", "login"), ("prompt", "consent")]),
            prompt: None,
        };
        let message = usage_of(plan(LoginProvider::Generic, &[]).with_auth_params(&twice, false));
        assert!(message.contains("twice"), "{message}");
        let raw = AuthParams {
            params: pairs(&[("prompt", "create")]),
            prompt: None,
        };
        let plan_raw = plan(LoginProvider::Generic, &[])
            .with_auth_params(&raw, false)
            .expect("--auth-param is sent unchecked");
        assert_eq!(plan_raw.extra_params, pairs(&[("prompt", "create")]));
        let message = usage_of(plan(LoginProvider::Generic, &[]).with_auth_params(&raw, true));
        assert!(message.contains("device flow"), "{message}");
        plan(LoginProvider::Generic, &[])
            .with_auth_params(&AuthParams::default(), true)
            .expect("nothing given, nothing refused");
    }
}
