//! The `groups` scope and claim (DESIGN.md "Groups"): what a group name may be, and which of a
//! user's groups a client sees. The one place both rules live: the CLI, the admin API, client
//! metadata (`groups_filter`) and token minting all come here.

/// The scope that releases the claim `groups` (an array of names, sorted).
pub const SCOPE: &str = "groups";

/// The longest group name, and the longest `groups_filter`.
pub const MAX_NAME_CHARS: usize = 64;

/// The characters a group name is made of: ASCII letters and digits and `-_.:/` — enough for
/// `team-a`, `grafana:editor` or `org/platform`, nothing a claim consumer (Kubernetes RBAC,
/// Grafana's role mapping, a shell) has to escape, and no look-alike letters.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')
}

fn well_formed(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_CHARS
        && text.chars().all(is_name_char)
        // A leading `-` would read as an option on the command line.
        && !text.starts_with('-')
}

/// A group name: 1–64 characters of A–Z a–z 0–9 `-_.:/`, not starting with `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    if well_formed(name) {
        Ok(())
    } else {
        Err(format!(
            "group name {name:?} is not valid: use 1–{MAX_NAME_CHARS} characters of A–Z a–z 0–9 \
             - _ . : / (not starting with -)"
        ))
    }
}

/// A client's `groups_filter`: the start of the names it may see, under the same rule as a
/// name (so that some name can match it).
pub fn check_filter(prefix: &str) -> Result<(), String> {
    if well_formed(prefix) {
        Ok(())
    } else {
        Err(format!(
            "groups_filter {prefix:?} must be the start of a group name: 1–{MAX_NAME_CHARS} \
             characters of A–Z a–z 0–9 - _ . : / (not starting with -)"
        ))
    }
}

/// The names a client may see: those starting with its `groups_filter`, or all without one;
/// sorted (byte order, the same on every database) and without repeats.
pub fn visible(mut names: Vec<String>, filter: Option<&str>) -> Vec<String> {
    if let Some(prefix) = filter {
        names.retain(|n| n.starts_with(prefix));
    }
    names.sort_unstable();
    names.dedup();
    names
}

/// Whether a space-separated scope holds `groups`.
pub fn in_scope(scope: &str) -> bool {
    scope.split(' ').any(|s| s == SCOPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_rule() {
        for good in [
            "a",
            "team-a",
            "grafana:editor",
            "org/platform",
            "A.b_c",
            "0",
            "/root",
        ] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_NAME_CHARS);
        assert!(check_name(&long).is_ok());
        for bad in [
            "",
            "-ops",
            "two words",
            "tab\there",
            "nul\0",
            "émigrés",
            "ops\n",
            "a,b",
            "a\"b",
            "ｏｐｓ",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&format!("{long}a")).is_err());
    }

    #[test]
    fn filters_are_name_prefixes() {
        assert!(check_filter("app-").is_ok());
        assert!(check_filter("grafana:").is_ok());
        for bad in ["", "-", "a b", "x%", &"a".repeat(MAX_NAME_CHARS + 1)] {
            assert!(check_filter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn clients_see_their_prefix_sorted() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = names(&["ops", "app-b", "Admins", "app-a", "app"]);
        assert_eq!(
            visible(all.clone(), None),
            names(&["Admins", "app", "app-a", "app-b", "ops"])
        );
        assert_eq!(
            visible(all.clone(), Some("app-")),
            names(&["app-a", "app-b"])
        );
        assert!(visible(all, Some("zzz")).is_empty());
    }

    #[test]
    fn the_scope_is_found_among_others() {
        assert!(in_scope("openid groups"));
        assert!(!in_scope("openid groupsx"));
        assert!(!in_scope(""));
    }
}
