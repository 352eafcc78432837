//! The Compute Engine metadata paths that Google's client libraries
//! request (google-auth, google-auth-library, Go's compute/metadata,
//! gcloud; `../shared/notes/metadata-server.md`), as a pure router.

/// A service account as the metadata server shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GceAccount {
    /// Its email address (`default` is the first account).
    pub email: String,
    /// The record whose tokens it serves.
    pub record: String,
    /// The record's scopes, as `.../scopes` lists them.
    pub scopes: Vec<String>,
}

/// What the metadata endpoints serve.
#[derive(Clone, Debug)]
pub struct GceConfig {
    /// The accounts; the first one is also `default`.
    pub accounts: Vec<GceAccount>,
    /// `project/project-id`; 404 when unset.
    pub project_id: Option<String>,
}

/// A metadata request, routed.
#[derive(Debug, PartialEq, Eq)]
pub enum GceRoute<'a> {
    /// `/`: the detection ping of google-auth and Go.
    Root,
    /// `/computeMetadata/v1/instance`: Node's detection.
    Instance,
    /// `project/project-id`.
    ProjectId,
    /// `universe/universe-domain` (or `_domain`).
    UniverseDomain,
    /// `instance/service-accounts/`: one line per account.
    Accounts,
    /// `instance/service-accounts/ACCOUNT/`: JSON with `?recursive=true`.
    AccountInfo {
        /// The account.
        account: &'a GceAccount,
        /// `?recursive=true`.
        recursive: bool,
    },
    /// `.../email`.
    Email(&'a GceAccount),
    /// `.../scopes`.
    Scopes(&'a GceAccount),
    /// `.../aliases`.
    Aliases(&'a GceAccount),
    /// `.../token`: an access token.
    Token(&'a GceAccount),
    /// `.../identity`: ID tokens, which a user's grant cannot mint for an
    /// arbitrary audience.
    Identity(&'a GceAccount),
    /// Anything else.
    NotFound,
}

/// The prefix of every data path.
pub const PREFIX: &str = "/computeMetadata/v1/";

impl GceConfig {
    /// The account called `name` in a path: `default` or an email.
    pub fn account(&self, name: &str) -> Option<&GceAccount> {
        if name == "default" {
            return self.accounts.first();
        }
        self.accounts.iter().find(|a| a.email == name)
    }

    /// Routes `path` (without the query); `recursive` is whether the
    /// query asks `recursive=true`.
    pub fn route(&self, path: &str, recursive: bool) -> GceRoute<'_> {
        if path == "/" {
            return GceRoute::Root;
        }
        let Some(rest) = path
            .strip_prefix(PREFIX)
            .or_else(|| (path == "/computeMetadata/v1").then_some(""))
        else {
            return GceRoute::NotFound;
        };
        match rest {
            "instance" | "instance/" => return GceRoute::Instance,
            "project/project-id" => return GceRoute::ProjectId,
            "universe/universe-domain" | "universe/universe_domain" => {
                return GceRoute::UniverseDomain;
            }
            "instance/service-accounts" | "instance/service-accounts/" => {
                return GceRoute::Accounts;
            }
            _ => {}
        }
        let Some(rest) = rest.strip_prefix("instance/service-accounts/") else {
            return GceRoute::NotFound;
        };
        let (name, leaf) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(account) = self.account(name) else {
            return GceRoute::NotFound;
        };
        match leaf {
            "" => GceRoute::AccountInfo { account, recursive },
            "email" => GceRoute::Email(account),
            "scopes" => GceRoute::Scopes(account),
            "aliases" => GceRoute::Aliases(account),
            "token" => GceRoute::Token(account),
            "identity" => GceRoute::Identity(account),
            _ => GceRoute::NotFound,
        }
    }

    /// `instance/service-accounts/`: `default/` and each email.
    pub fn account_list(&self) -> String {
        let mut text = String::from("default/\n");
        for account in &self.accounts {
            text.push_str(&account.email);
            text.push_str("/\n");
        }
        text
    }

    /// The aliases of `account` (`default` for the first).
    pub fn aliases(&self, account: &GceAccount) -> Vec<&'static str> {
        let is_default = self
            .accounts
            .first()
            .is_some_and(|first| first.email == account.email);
        if is_default {
            vec!["default"]
        } else {
            Vec::new()
        }
    }

    /// `.../ACCOUNT/?recursive=true`: Python's google-auth reads `email`
    /// (required) and `scopes`.
    pub fn account_json(&self, account: &GceAccount) -> serde_json::Value {
        serde_json::json!({
            "aliases": self.aliases(account),
            "email": account.email,
            "scopes": account.scopes,
        })
    }
}

/// `.../ACCOUNT/` without `recursive`: its entries, as a directory.
pub const ACCOUNT_ENTRIES: &str = "aliases\nemail\nidentity\nscopes\ntoken\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GceConfig {
        let account = |email: &str, record: &str| GceAccount {
            email: email.to_owned(),
            record: record.to_owned(),
            scopes: vec!["https://www.googleapis.com/auth/gmail.readonly".to_owned()],
        };
        GceConfig {
            accounts: vec![
                account("mail@example.com", "mail"),
                account("sheets@example.com", "sheets"),
            ],
            project_id: None,
        }
    }

    #[test]
    fn default_is_the_first_account_and_emails_name_the_others() {
        let config = config();
        let token = |path: &str| match config.route(path, false) {
            GceRoute::Token(account) => Some(account.record.clone()),
            _ => None,
        };
        let base = "/computeMetadata/v1/instance/service-accounts";
        assert_eq!(
            token(&format!("{base}/default/token")).as_deref(),
            Some("mail")
        );
        assert_eq!(
            token(&format!("{base}/sheets@example.com/token")).as_deref(),
            Some("sheets")
        );
        assert_eq!(token(&format!("{base}/other@example.com/token")), None);
        assert_eq!(token(&format!("{base}/default/token/x")), None);
        assert_eq!(config.aliases(&config.accounts[0]), ["default"]);
        assert!(config.aliases(&config.accounts[1]).is_empty());
    }

    #[test]
    fn detection_and_info_paths_route() {
        let config = config();
        assert_eq!(config.route("/", false), GceRoute::Root);
        assert_eq!(
            config.route("/computeMetadata/v1/instance", false),
            GceRoute::Instance
        );
        assert_eq!(
            config.route("/computeMetadata/v1/universe/universe_domain", false),
            GceRoute::UniverseDomain
        );
        assert!(matches!(
            config.route(
                "/computeMetadata/v1/instance/service-accounts/default/",
                true
            ),
            GceRoute::AccountInfo {
                recursive: true,
                ..
            }
        ));
        assert_eq!(
            config.route("/computeMetadata/v2/instance", false),
            GceRoute::NotFound
        );
        assert_eq!(
            config.route("/computeMetadata/v1/instance/zone", false),
            GceRoute::NotFound
        );
        assert_eq!(
            config.account_list(),
            "default/\nmail@example.com/\nsheets@example.com/\n"
        );
        let info = config.account_json(&config.accounts[0]);
        assert_eq!(info["email"], "mail@example.com");
        assert_eq!(info["aliases"][0], "default");
    }
}
