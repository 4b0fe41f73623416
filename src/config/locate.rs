//! Finds the line of a dotted key (`models[1].quality.law`) in a YAML file's text, so that a
//! config error can say where to look. Block style is followed key by key and item by item;
//! where a value is written in flow style (`{ a: 1 }`, `[x, y]`) the line of the deepest key
//! found is the answer.

/// One meaningful (not blank, not comment) line.
struct Line<'a> {
    /// 1-based line number.
    number: usize,
    /// Column of the `-` when the line starts a sequence item.
    dash: Option<usize>,
    /// Column where the line's content (after any `- `) starts.
    col: usize,
    /// That content.
    content: &'a str,
}

impl Line<'_> {
    /// The column that decides whether the line is inside a block opened at a lower column.
    fn start(&self) -> usize {
        self.dash.unwrap_or(self.col)
    }

    fn is_key(&self, key: &str) -> bool {
        let rest = self
            .content
            .strip_prefix(key)
            .or_else(|| self.content.strip_prefix(&format!("\"{key}\"")))
            .or_else(|| self.content.strip_prefix(&format!("'{key}'")));
        rest.is_some_and(|r| {
            r.starts_with(':') && (r.len() == 1 || r[1..].starts_with([' ', '\t']))
        })
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// The 1-based line where `key` is written in `text`, or the line of its deepest ancestor
/// found; `None` when not even its first segment is in the text (a key from the environment).
pub(super) fn line_of(text: &str, key: &str) -> Option<usize> {
    let lines: Vec<Line> = text
        .lines()
        .enumerate()
        .filter_map(|(i, raw)| meaningful(i + 1, raw))
        .collect();
    let (mut lo, mut hi) = (0, lines.len());
    let mut found = None;
    for segment in segments(key)? {
        let range = &lines[lo..hi];
        let first = range.first()?;
        match segment {
            Segment::Key(name) => {
                let level = first.col;
                let Some(at) = range.iter().position(|l| l.col == level && l.is_key(name)) else {
                    return found;
                };
                let line = &range[at];
                found = Some(line.number);
                let end = range[at + 1..]
                    .iter()
                    .position(|l| l.start() < line.col || (l.dash.is_none() && l.col <= line.col))
                    .map_or(range.len(), |p| at + 1 + p);
                (lo, hi) = (lo + at + 1, lo + end);
            }
            Segment::Index(n) => {
                let Some(column) = first.dash else {
                    return found;
                };
                let items: Vec<usize> = range
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.dash == Some(column))
                    .map(|(i, _)| i)
                    .collect();
                let Some(&at) = items.get(n) else {
                    return found;
                };
                found = Some(range[at].number);
                let end = items.get(n + 1).copied().unwrap_or(range.len());
                (lo, hi) = (lo + at, lo + end);
            }
        }
        if lo >= hi {
            break;
        }
    }
    found
}

fn meaningful(number: usize, raw: &str) -> Option<Line<'_>> {
    let indent = raw.len() - raw.trim_start_matches(' ').len();
    let content = raw[indent..].trim_end();
    if content.is_empty() || content.starts_with('#') || content == "---" {
        return None;
    }
    match content
        .strip_prefix('-')
        .filter(|r| r.is_empty() || r.starts_with(' '))
    {
        Some(rest) => {
            let inner = rest.trim_start();
            Some(Line {
                number,
                dash: Some(indent),
                col: indent + 1 + (rest.len() - inner.len()),
                content: inner,
            })
        }
        None => Some(Line {
            number,
            dash: None,
            col: indent,
            content,
        }),
    }
}

/// `a.b[2].c` as segments; `None` for a path serde did not write.
fn segments(key: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Segment::Key(name));
        }
        while let Some(rest) = indices.strip_prefix('[') {
            let close = rest.find(']')?;
            out.push(Segment::Index(rest[..close].parse().ok()?));
            indices = &rest[close + 1..];
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const TEXT: &str = "\
# comment
server:
  http_addr: 0.0.0.0:8080
  # workers
  workers: 0
scoring:
  weights: { quality: 0.75, cost: 0.15 }
models:
  - name: small
    quality:
      default: 0.5
  - name: large
    quality:
      law: 0.9
      default: 0.8
policies:
- name: p
  models: [small]
";

    #[test]
    fn block_keys_and_items_are_found() {
        assert_eq!(line_of(TEXT, "server.workers"), Some(5));
        assert_eq!(line_of(TEXT, "server"), Some(2));
        assert_eq!(line_of(TEXT, "models[0].name"), Some(9));
        assert_eq!(line_of(TEXT, "models[1]"), Some(12));
        assert_eq!(line_of(TEXT, "models[1].quality.law"), Some(14));
        assert_eq!(line_of(TEXT, "models[1].quality.default"), Some(15));
        assert_eq!(line_of(TEXT, "policies[0].models"), Some(18));
    }

    #[test]
    fn flow_values_and_missing_keys_give_the_deepest_line_found() {
        assert_eq!(line_of(TEXT, "scoring.weights.cost"), Some(7));
        assert_eq!(line_of(TEXT, "models[1].price"), Some(12));
        assert_eq!(line_of(TEXT, "models[5].name"), Some(8));
        assert_eq!(line_of(TEXT, "proxy.max_retries"), None);
        // `workers` under server, not the comment mentioning it.
        assert_eq!(line_of(TEXT, "server.wokers"), Some(2));
    }
}
