//! A test browser: plays the user against oidc-provider's development
//! interaction pages (`features.devInteractions` in
//! `tests/oidc-provider/launcher.mjs`), so that `tokvault login` can be
//! tested end to end without a real browser.
//!
//! - [`authorize`] starts at the authorization URL tokvault printed, follows
//!   the provider's redirects, signs in (devInteractions takes any login and
//!   password), consents, and stops at the first redirect that leaves the
//!   provider, i.e. the one to the client's loopback `redirect_uri`. It
//!   returns that URL (`code`, `state`, `iss`) without requesting it: the
//!   caller either [`deliver`]s it to tokvault's listener or pastes it.
//! - [`deny`] does the same but presses "Cancel" on the sign-in page (the
//!   `/interaction/:uid/abort` route): the redirect carries
//!   `error=access_denied` and the request's `state`.
//! - [`approve_device`] is the user's side of the device flow (RFC 8628): the
//!   verification page (with or without `?user_code=`), its xsrf-protected
//!   forms, the confirmation, sign-in and consent, ending on the provider's
//!   "Sign-in Success" page.
//!
//! Each call is a fresh browser (a private window): its own HTTP client and
//! cookie jar. reqwest follows no redirects here (`Policy::none()`): each
//! hop is looked at, so the walk stops before the redirect to the loopback
//! listener. The cookies the provider's interaction sessions need are kept
//! in a tiny jar of our own instead of reqwest's `cookies` feature, which
//! the workspace's reqwest does not have: features of dev-dependencies are
//! unified into the `tokvault` binary the tests run, and that binary should
//! be built as shipped. The jar keeps name, value and Path per host (like a
//! browser, not per port), honours deletions (empty value, `Max-Age=0`, an
//! expiry in 1970), and ignores Domain, Secure and SameSite: every peer is on
//! loopback over plain HTTP. HTML is parsed just enough for these pages: the
//! first `<form>`'s action and `<input>`s (hidden ones are sent as they are;
//! `login`, `password` and `user_code` are filled in) and the Cancel link,
//! with attributes in any order and quoting, entities decoded.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use url::Url;

/// Hops (requests) allowed for one walk; a full authorization takes 7.
const MAX_STEPS: usize = 32;

/// devInteractions accepts any password.
const PASSWORD: &str = "any-password";

/// Plays the user who signs in as `login` and consents, starting at
/// `authorization_url`. Returns the URL of the first redirect off the
/// provider (the client's loopback `redirect_uri` with `code` and `state`,
/// or with `error` if the provider refused the request) without requesting
/// it.
pub(crate) async fn authorize(authorization_url: &str, login: &str) -> String {
    let mut browser = Browser::new();
    match browser
        .walk(
            authorization_url,
            Act::Approve {
                login,
                user_code: None,
            },
        )
        .await
    {
        End::Redirect(url) => url.into(),
        End::Page(page) => panic!(
            "authorize: the walk ended on a page instead of a redirect to the client: {}",
            summary(&page)
        ),
    }
}

/// Plays the user who cancels on the sign-in page. Returns the URL of the
/// redirect to the client (`error=access_denied` and the request's `state`)
/// without requesting it.
pub(crate) async fn deny(authorization_url: &str) -> String {
    let mut browser = Browser::new();
    match browser.walk(authorization_url, Act::Cancel).await {
        End::Redirect(url) => url.into(),
        End::Page(page) => panic!(
            "deny: the walk ended on a page instead of a redirect to the client: {}",
            summary(&page)
        ),
    }
}

/// Plays the device flow's user: opens `verification_uri` (the
/// `verification_uri_complete`, or the plain `verification_uri` with
/// `user_code`), confirms the code, signs in as `login` and consents.
/// Panics unless the provider ends on its success page.
pub(crate) async fn approve_device(verification_uri: &str, user_code: Option<&str>, login: &str) {
    let mut browser = Browser::new();
    match browser
        .walk(verification_uri, Act::Approve { login, user_code })
        .await
    {
        End::Page(page) => assert!(
            page.contains("Sign-in Success"),
            "approve_device: the last page is not the success page: {}",
            summary(&page)
        ),
        End::Redirect(url) => {
            panic!("approve_device: the provider redirected off itself, to {url}")
        }
    }
}

/// Sends the browser to `final_url` (tokvault's loopback listener): one GET,
/// no redirect followed, no cookie. Returns the status and the body.
pub(crate) async fn deliver(final_url: &str) -> (u16, String) {
    let url =
        Url::parse(final_url).unwrap_or_else(|e| panic!("deliver: not a URL ({e}): {final_url:?}"));
    let response = Browser::new().request(&url, None).await;
    (response.status, response.body)
}

/// What the user does when the page offers a choice.
#[derive(Clone, Copy)]
enum Act<'a> {
    /// Fill in the forms and submit them.
    Approve {
        login: &'a str,
        user_code: Option<&'a str>,
    },
    /// Follow the Cancel link of the first interaction page.
    Cancel,
}

/// How a walk ended.
enum End {
    /// A redirect to another origin than the provider's, not requested.
    Redirect(Url),
    /// A page with nothing left to submit or follow.
    Page(String),
}

/// One response.
struct Response {
    status: u16,
    location: Option<Url>,
    body: String,
}

/// A Set-Cookie remembered.
struct Cookie {
    host: String,
    path: String,
    name: String,
    value: String,
}

struct Browser {
    http: reqwest::Client,
    jar: Vec<Cookie>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // Tests never leave loopback, whatever proxy the environment names.
                .no_proxy()
                // A fresh connection per request: nothing can be handed a
                // keep-alive connection Node has closed in the meantime.
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .user_agent("tokvault-test-browser")
                .build()
                .expect("test browser's HTTP client"),
            jar: Vec::new(),
        }
    }

    /// Follows redirects and submits pages from `start` until a redirect
    /// leaves `start`'s origin or a page offers nothing to do.
    async fn walk(&mut self, start: &str, act: Act<'_>) -> End {
        let mut url = Url::parse(start).unwrap_or_else(|e| panic!("not a URL ({e}): {start:?}"));
        let origin = url.origin();
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..MAX_STEPS {
            let response = self.request(&url, form.take().as_deref()).await;
            if let Some(next) = response.location {
                if next.origin() != origin {
                    return End::Redirect(next);
                }
                url = next;
                continue;
            }
            assert!(
                response.status == 200,
                "{url} answered {}: {}",
                response.status,
                summary(&response.body)
            );
            let page = response.body;
            // The device pages re-render with a red message on a bad,
            // expired or used code; submitting again would loop.
            if let Some(at) = page.find("class=\"red\"") {
                panic!("{url} shows an error: {}", summary(&page[at..]));
            }
            if let Act::Cancel = act
                && let Some(cancel) = cancel_link(&page)
            {
                url = url
                    .join(&cancel)
                    .unwrap_or_else(|e| panic!("Cancel link {cancel:?} ({e})"));
                continue;
            }
            let Some(found) = first_form(&page) else {
                return End::Page(page);
            };
            let Act::Approve { login, user_code } = act else {
                panic!("{url} has a form but no Cancel link: {}", summary(&page));
            };
            let mut fields = found.hidden;
            for name in found.visible {
                let value = match name.as_str() {
                    "login" => login,
                    "password" => PASSWORD,
                    "user_code" => user_code.unwrap_or_else(|| {
                        panic!("{url} asks for the user code and none was given")
                    }),
                    other => panic!("{url} asks for an unknown field {other:?}"),
                };
                fields.push((name, value.to_owned()));
            }
            url = match found.action {
                Some(action) => url
                    .join(&action)
                    .unwrap_or_else(|e| panic!("form action {action:?} ({e})")),
                None => url,
            };
            form = Some(fields);
        }
        panic!("no end after {MAX_STEPS} requests; last at {url}")
    }

    /// One GET (or a form POST when `form` is given), cookies in and out.
    async fn request(&mut self, url: &Url, form: Option<&[(String, String)]>) -> Response {
        let mut request = match form {
            Some(fields) => {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish();
                self.http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            None => self.http.get(url.clone()),
        };
        if let Some(cookies) = self.cookie_header(url) {
            request = request.header(COOKIE, cookies);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("test browser: request to {url} failed: {e}"));
        let status = response.status().as_u16();
        for header in response.headers().get_all(SET_COOKIE) {
            if let Ok(text) = header.to_str() {
                self.store_cookie(url, text);
            }
        }
        let location = if response.status().is_redirection() {
            let value = response
                .headers()
                .get(LOCATION)
                .unwrap_or_else(|| panic!("{url} answered {status} without a Location"));
            let text = value
                .to_str()
                .unwrap_or_else(|e| panic!("{url}: Location is not text ({e})"));
            Some(
                url.join(text)
                    .unwrap_or_else(|e| panic!("{url}: bad Location {text:?} ({e})")),
            )
        } else {
            None
        };
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("test browser: body of {url}: {e}"));
        Response {
            status,
            location,
            body,
        }
    }

    fn store_cookie(&mut self, url: &Url, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        let mut path = default_cookie_path(url.path()).to_owned();
        let mut delete = value.is_empty();
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            let (key, val) = (key.trim().to_ascii_lowercase(), val.trim());
            match key.as_str() {
                "path" if val.starts_with('/') => val.clone_into(&mut path),
                "max-age" => delete |= val.parse::<i64>().is_ok_and(|age| age <= 0),
                "expires" => delete |= val.contains("1970"),
                _ => {}
            }
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        self.jar
            .retain(|c| !(c.host == host && c.path == path && c.name == name));
        if !delete {
            self.jar.push(Cookie {
                host,
                path,
                name: name.to_owned(),
                value: value.to_owned(),
            });
        }
    }

    /// `name=value; ...` of the cookies for `url`'s host and path.
    fn cookie_header(&self, url: &Url) -> Option<String> {
        let host = url.host_str().unwrap_or_default();
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|c| c.host == host && path_matches(url.path(), &c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

/// RFC 6265 section 5.1.4: the directory of the request path.
fn default_cookie_path(request_path: &str) -> &str {
    match request_path.rfind('/') {
        None | Some(0) => "/",
        Some(end) => &request_path[..end],
    }
}

/// RFC 6265 section 5.1.4: does the cookie path cover the request path?
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || request_path[cookie_path.len()..].starts_with('/')))
}

/// A form of the page.
struct Form {
    action: Option<String>,
    /// Hidden inputs, sent as they are.
    hidden: Vec<(String, String)>,
    /// Names of the inputs the user fills in.
    visible: Vec<String>,
}

/// The page's first `<form>`.
fn first_form(html: &str) -> Option<Form> {
    let form = next_tag(html, 0, "form")?;
    let end = find_ascii_ci(html, form.end, "</form").unwrap_or(html.len());
    let mut found = Form {
        action: form.attr("action").map(str::to_owned),
        hidden: Vec::new(),
        visible: Vec::new(),
    };
    let mut at = form.end;
    while let Some(input) = next_tag(&html[..end], at, "input") {
        at = input.end;
        let Some(name) = input.attr("name") else {
            continue;
        };
        let kind = input.attr("type").unwrap_or("text").to_ascii_lowercase();
        match kind.as_str() {
            "hidden" => found.hidden.push((
                name.to_owned(),
                input.attr("value").unwrap_or_default().to_owned(),
            )),
            "submit" | "button" | "reset" | "image" => {}
            _ => found.visible.push(name.to_owned()),
        }
    }
    Some(found)
}

/// The `href` of the devInteractions Cancel link (`/interaction/:uid/abort`).
fn cancel_link(html: &str) -> Option<String> {
    let mut at = 0;
    while let Some(link) = next_tag(html, at, "a") {
        at = link.end;
        if let Some(href) = link.attr("href")
            && href
                .split(['?', '#'])
                .next()
                .is_some_and(|path| path.ends_with("/abort"))
        {
            return Some(href.to_owned());
        }
    }
    None
}

/// A start tag: its attributes (names lowercased, values decoded) and the
/// byte offset just past its `>`.
struct Tag {
    attrs: Vec<(String, String)>,
    end: usize,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The next `<name ...>` start tag at or after `from` (case-insensitive).
fn next_tag(html: &str, from: usize, name: &str) -> Option<Tag> {
    let bytes = html.as_bytes();
    let mut at = from;
    loop {
        let open = find_ascii_ci(html, at, &format!("<{name}"))?;
        let after = open + 1 + name.len();
        match bytes.get(after) {
            Some(b) if b.is_ascii_whitespace() || *b == b'>' || *b == b'/' => {
                return Some(parse_attributes(html, after));
            }
            None => return None,
            // A longer tag name (`<abbr>` for `a`, say).
            Some(_) => at = after,
        }
    }
}

/// Parses attributes from `at` to the tag's closing `>` (outside quotes).
fn parse_attributes(html: &str, mut at: usize) -> Tag {
    let bytes = html.as_bytes();
    let mut attrs = Vec::new();
    let is_name_end = |b: u8| b.is_ascii_whitespace() || matches!(b, b'=' | b'>' | b'/');
    loop {
        while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
            at += 1;
        }
        if at >= bytes.len() {
            return Tag { attrs, end: at };
        }
        if bytes[at] == b'>' {
            return Tag { attrs, end: at + 1 };
        }
        let start = at;
        while at < bytes.len() && !is_name_end(bytes[at]) {
            at += 1;
        }
        let name = html[start..at].to_ascii_lowercase();
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let mut value = String::new();
        if bytes.get(at) == Some(&b'=') {
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            match bytes.get(at) {
                Some(&quote) if quote == b'"' || quote == b'\'' => {
                    let open = at + 1;
                    let close = html[open..]
                        .find(char::from(quote))
                        .map_or(html.len(), |i| open + i);
                    value = decode_entities(&html[open..close]);
                    at = (close + 1).min(html.len());
                }
                _ => {
                    let open = at;
                    while at < bytes.len() && !bytes[at].is_ascii_whitespace() && bytes[at] != b'>'
                    {
                        at += 1;
                    }
                    value = decode_entities(&html[open..at]);
                }
            }
        }
        attrs.push((name, value));
    }
}

/// Byte offset of `needle` (ASCII) in `haystack` at or after `from`,
/// ignoring ASCII case.
fn find_ascii_ci(haystack: &str, from: usize, needle: &str) -> Option<usize> {
    let hay = haystack.as_bytes().get(from..)?;
    let needle = needle.as_bytes();
    hay.windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
        .map(|i| from + i)
}

/// Decodes `&amp; &lt; &gt; &quot; &apos;` and numeric references; anything
/// else is kept as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let entity = &rest[1..semi];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            ch.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A page as text for a panic message: no styles, scripts or tags,
/// whitespace collapsed, at most 1500 characters.
fn summary(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        text.push(' ');
        rest = &rest[open..];
        let skip_to = ["<style", "<script"]
            .iter()
            .find(|block| {
                rest.as_bytes()
                    .get(..block.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(block.as_bytes()))
            })
            .map(|block| format!("</{}", &block[1..]));
        let close = match skip_to {
            Some(end_tag) => find_ascii_ci(rest, 0, &end_tag)
                .and_then(|i| rest[i..].find('>').map(|j| i + j))
                .unwrap_or(rest.len().saturating_sub(1)),
            None => rest.find('>').unwrap_or(rest.len().saturating_sub(1)),
        };
        rest = &rest[(close + 1).min(rest.len())..];
    }
    text.push_str(rest);
    let text = decode_entities(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    match text.char_indices().nth(1500) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
