//! Connection URLs fit to show: a config read and `Debug` pass a stored
//! URL through [`redact_url`]. This module must never let a password
//! through, in any of the forms a connection URL carries one; where a form
//! does not parse, it masks more, never less.

/// What a masked password shows.
const MASK: &str = "*****";

/// Whether a URL parameter or a key/value DSN keyword names a password.
fn is_password_key(key: &str) -> bool {
    let key = percent_encoding::percent_decode_str(key.trim()).decode_utf8_lossy();
    ["password", "passwd", "pass", "pwd", "sslpassword"]
        .iter()
        .any(|k| key.eq_ignore_ascii_case(k))
}

/// A connection URL or DSN fit to show: every password it may carry is
/// masked, in the userinfo (`postgres://u:*****@h/db`, `u:*****@tcp(h)/`),
/// in query parameters (`?password=*****`) and in libpq's key/value form
/// (`host=h password=*****`). The `{{password}}` placeholder is shown: it
/// is not a secret. Errs towards masking.
pub(crate) fn redact_url(url: &str) -> String {
    let is_url = split_scheme(url).is_some();
    let shown = if !is_url && looks_key_value(url) {
        redact_key_values(url)
    } else {
        redact_query(&redact_userinfo(url))
    };
    mask_assignments(&shown, is_url)
}

/// The last net: any `password=…` (or `pwd = …`, any case) left in the
/// text is masked up to the next space (or `&`, in a URL's query).
fn mask_assignments(text: &str, is_url: bool) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let keyword = ["sslpassword", "password", "passwd", "pass", "pwd"]
            .into_iter()
            .find(|k| at_word_start && bytes[i..].starts_with(k.as_bytes()));
        let Some(keyword) = keyword else {
            i += 1;
            continue;
        };
        let mut j = i + keyword.len();
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes.get(j) != Some(&b'=') {
            i += keyword.len();
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let value = &text[j..];
        if value.starts_with(MASK) || value.starts_with("{{password}}") {
            i = j;
            continue;
        }
        let end = if value.starts_with('\'') {
            // To the closing quote; an escaped one does not close it.
            let mut k = 1;
            let v = value.as_bytes();
            let close = loop {
                match v.get(k) {
                    None => break v.len(),
                    Some(b'\\') => k += 2,
                    Some(b'\'') => break k + 1,
                    Some(_) => k += 1,
                }
            };
            close.min(value.len())
        } else {
            value
                .find(|c: char| c.is_whitespace() || (is_url && c == '&'))
                .unwrap_or(value.len())
        };
        let end = j + end;
        if !text.is_char_boundary(end) {
            // An escape split a character: mask to the end.
            out.push_str(&text[copied..j]);
            out.push_str(MASK);
            return out;
        }
        out.push_str(&text[copied..j]);
        out.push_str(MASK);
        copied = end;
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether `text` starts as libpq's key/value form does: a keyword (letters,
/// digits, `_`), then `=`. A Go DSN's userinfo has a `:` first.
fn looks_key_value(text: &str) -> bool {
    let text = text.trim_start();
    let key_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    key_end > 0 && text[key_end..].trim_start().starts_with('=')
}

/// `scheme://rest` split, when what comes before `://` is a URL scheme
/// (a letter, then letters, digits, `+`, `-`, `.`). A Go DSN's password
/// may hold `://` (`user:pa://ss@tcp(h)/`): that is no scheme.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

fn redact_userinfo(url: &str) -> String {
    let (scheme, rest) = match split_scheme(url) {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    // A key/value DSN may hold an `@` in a value; it has no userinfo.
    if scheme.is_none() && userinfo.contains('=') {
        return url.to_owned();
    }
    match userinfo.split_once(':') {
        Some((user, password)) if password != "{{password}}" => match scheme {
            Some(scheme) => format!("{scheme}://{user}:{MASK}@{host}"),
            None => format!("{user}:{MASK}@{host}"),
        },
        _ => url.to_owned(),
    }
}

/// Masks password parameters after the first `?` (separated by `&`).
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(base);
    out.push('?');
    let mut rest = query;
    loop {
        let end = rest.find('&').unwrap_or(rest.len());
        let (param, tail) = rest.split_at(end);
        match param.split_once('=') {
            Some((key, value)) if is_password_key(key) && value != "{{password}}" => {
                out.push_str(key);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(param),
        }
        let mut chars = tail.chars();
        match chars.next() {
            Some(separator) => {
                out.push(separator);
                rest = chars.as_str();
            }
            None => break,
        }
    }
    out
}

/// Masks the values of password keywords in libpq's `key=value` form,
/// where a value is a bare word or single-quoted with `\'` and `\\`
/// escapes, and spaces may surround the `=`. Text that does not parse as
/// that form is masked from the first password keyword on.
fn redact_key_values(dsn: &str) -> String {
    let bytes = dsn.as_bytes();
    let mut out = String::with_capacity(dsn.len());
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    while i < bytes.len() {
        let start = i;
        i = skip_space(i);
        out.push_str(&dsn[start..i]);
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &dsn[key_start..i];
        let eq = skip_space(i);
        if eq >= bytes.len() || bytes[eq] != b'=' {
            // Not key/value text: mask from the first password keyword on.
            return mask_from_password_keyword(dsn);
        }
        let value_start = skip_space(eq + 1);
        let mut j = value_start;
        if j < bytes.len() && bytes[j] == b'\'' {
            j += 1;
            loop {
                match bytes.get(j) {
                    None => return mask_from_password_keyword(dsn),
                    Some(b'\\') => j += 2,
                    Some(b'\'') => {
                        j += 1;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
        } else {
            while j < bytes.len() && !bytes[j].is_ascii_whitespace() {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
        }
        let j = j.min(bytes.len());
        out.push_str(&dsn[key_start..value_start]);
        if is_password_key(key) && !dsn.is_char_boundary(j) {
            return mask_from_password_keyword(dsn);
        }
        if is_password_key(key) && &dsn[value_start..j] != "{{password}}" {
            out.push_str(MASK);
        } else if dsn.is_char_boundary(j) {
            out.push_str(&dsn[value_start..j]);
        } else {
            return mask_from_password_keyword(dsn);
        }
        i = j;
    }
    out
}

/// Everything from the first word that names a password is masked.
fn mask_from_password_keyword(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    match ["pass", "pwd"].iter().filter_map(|k| lower.find(k)).min() {
        Some(at) => format!("{}{MASK}", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_urls_read_back_without_their_passwords() {
        let secret = "Zq9s3cr3t";
        for url in [
            format!("postgresql://admin:{secret}@db:5432/app"),
            format!("postgres://admin:p@ss:{secret}@db/app"),
            format!("postgresql://db/app?password={secret}"),
            format!("postgresql://db/app?sslmode=disable&password={secret}&user=u"),
            format!("postgresql://db/app?user=u;PASSWORD={secret}"),
            format!("postgresql://db/app?pass%77ord={secret}"),
            format!("postgresql://u@db/app?application_name=a@b&password={secret}"),
            format!("admin:{secret}@tcp(db:3306)/app"),
            format!("admin:{secret}@/app?password={secret}"),
            format!("{{{{username}}}}:{{{{password}}}}@tcp(db:3306)/?pwd={secret}"),
            format!("host=db user=admin password={secret} dbname=app"),
            format!("host=db password = {secret}"),
            format!("host=db password='{secret} with \\' quote' dbname=app"),
            format!("host=db password={secret}\\ more dbname=app"),
            format!("host=db password='{secret} unterminated"),
            format!("host=db  sslpassword={secret}"),
            format!("host=db password={secret}?x=1"),
            format!("host=db password=a@{secret}"),
        ] {
            let shown = redact_url(&url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
        // What is not a password stays readable.
        assert_eq!(
            redact_url("host=db user=admin password=x dbname=app"),
            "host=db user=admin password=***** dbname=app"
        );
        assert_eq!(
            redact_url("postgresql://{{username}}:{{password}}@db/app?sslmode=disable"),
            "postgresql://{{username}}:{{password}}@db/app?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://db/app?sslmode=disable&password=x"),
            "postgresql://db/app?sslmode=disable&password=*****"
        );
        assert_eq!(
            redact_url("admin:x@tcp(db:3306)/app"),
            "admin:*****@tcp(db:3306)/app"
        );
        // A password holding `://` does not make the DSN a URL.
        assert_eq!(
            redact_url("a:Zq9://a@tcp(a:3306)/a"),
            "a:*****@tcp(a:3306)/a"
        );
    }

    /// A password: no whitespace (it ends a bare DSN value), none of the
    /// separators a value of each form ends at, and a prefix seen nowhere
    /// else in the URLs below.
    fn secret() -> impl Strategy<Value = String> {
        "Zq9[A-Za-z0-9!#$%()*+,./:<>\\[\\]^_`{|}~-]{4,24}"
    }

    fn word() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9.]{0,10}"
    }

    proptest! {
        #[test]
        fn no_form_of_url_shows_its_password(
            secret in secret(),
            host in word(),
            user in word(),
            db in word(),
            other in word(),
            form in 0..6usize,
        ) {
            let url = match form {
                0 => format!("postgresql://{user}:{secret}@{host}:5432/{db}"),
                1 => format!("postgresql://{user}@{host}/{db}?{other}=1&password={}", secret.replace(['&', ';'], "")),
                2 => format!("{user}:{secret}@tcp({host}:3306)/{db}"),
                3 => format!("host={host} user={user} password={secret} dbname={db}"),
                4 => format!("host={host} password='{}' dbname={db}", secret.replace(['\'', '\\'], "")),
                _ => format!("{other} = {host} PassWord = {secret}"),
            };
            let shown = redact_url(&url);
            let secret_part = &secret[..secret.len().min(8)];
            prop_assert!(!shown.contains(secret_part), "{} -> {}", url, shown);
        }

        #[test]
        fn any_text_is_redacted_without_panicking(text in any::<String>()) {
            let _ = redact_url(&text);
        }

        #[test]
        fn passwords_after_any_prefix_are_masked(
            prefix in "[ -~]{0,40}",
            secret in secret(),
        ) {
            // However odd the text before it, a libpq password keyword's
            // value is masked.
            let url = format!("host=h{} password={secret}", prefix.replace(['\'', '\\', '='], ""));
            let shown = redact_url(&url);
            prop_assert!(!shown.contains(&secret[..8.min(secret.len())]), "{} -> {}", url, shown);
        }
    }
}
