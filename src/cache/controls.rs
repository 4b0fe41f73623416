//! What a client allows the cache to do for its request, from its headers.
//!
//! `Cache-Control: no-cache` skips the lookup (the answer is fetched fresh, and may still be
//! stored); `Cache-Control: no-store` skips the write; `x-semrouter-cache: bypass` skips both.
//! A pure function over header pairs, so every front end (REST, proxy, ext_proc) shares it.

/// The header that bypasses the cache.
pub const BYPASS_HEADER: &str = "x-semrouter-cache";

/// What the cache may do for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directives {
    /// Look the request up (exact and semantic).
    pub lookup: bool,
    /// Store the answer.
    pub store: bool,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            lookup: true,
            store: true,
        }
    }
}

/// Reads the directives from `(name, value)` header pairs (names in any case; a header may
/// repeat; `Cache-Control` directives are comma-separated and may carry arguments).
pub fn directives<'a, I>(headers: I) -> Directives
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = Directives::default();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("cache-control") {
            for directive in value.split(',') {
                let token = directive.split('=').next().unwrap_or("").trim();
                if token.eq_ignore_ascii_case("no-cache") {
                    out.lookup = false;
                } else if token.eq_ignore_ascii_case("no-store") {
                    out.store = false;
                }
            }
        } else if name.eq_ignore_ascii_case(BYPASS_HEADER)
            && value.trim().eq_ignore_ascii_case("bypass")
        {
            out.lookup = false;
            out.store = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_map_to_directives() {
        assert_eq!(
            directives([]),
            Directives {
                lookup: true,
                store: true
            }
        );
        assert_eq!(
            directives([("Cache-Control", "no-cache")]),
            Directives {
                lookup: false,
                store: true
            }
        );
        assert_eq!(
            directives([("cache-control", "max-age=0, NO-STORE")]),
            Directives {
                lookup: true,
                store: false
            }
        );
        assert_eq!(
            directives([("cache-control", "no-cache"), ("Cache-Control", "no-store")]),
            Directives {
                lookup: false,
                store: false
            }
        );
        assert_eq!(
            directives([("X-Semrouter-Cache", " Bypass ")]),
            Directives {
                lookup: false,
                store: false
            }
        );
        assert_eq!(
            directives([("x-semrouter-cache", "on")]),
            Directives {
                lookup: true,
                store: true
            }
        );
        assert_eq!(
            directives([("cache-control", "no-cache=\"set-cookie\"")]),
            Directives {
                lookup: false,
                store: true
            }
        );
        assert_eq!(
            directives([("pragma", "no-cache"), ("x-other", "no-store")]),
            Directives::default()
        );
    }
}
