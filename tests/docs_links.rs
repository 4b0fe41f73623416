//! Every relative link in README.md and docs/*.md must lead somewhere: the file or folder it
//! names exists (relative to the linking file), and a `#anchor` names a heading of the linked
//! markdown file (or of the same file), slugged as GitHub slugs headings.
//!
//! Checked: inline links and images `[text](target)` and reference definitions `[ref]: target`.
//! Skipped: `http:`, `https:` and `mailto:` targets, and anything inside fenced code blocks or
//! inline code spans. Anchors are checked against ATX headings (`## Title`) and explicit
//! `<a name="...">`/`id="..."` anchors; an anchor on a non-markdown file (such as `#L12` on a
//! source file) is not checked. Needs nothing but the repository's files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

/// GitHub's anchor for a heading's text, before duplicates are numbered: the rendered text
/// (inline code kept, emphasis markers, link targets and HTML tags dropped), lowercased, with
/// every character that is not a letter, digit, space, hyphen or underscore dropped and each
/// space turned into a hyphen.
fn slug(heading: &str) -> String {
    rendered_text(heading)
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The text of a heading as GitHub renders it: code spans keep their content, links and images
/// keep their text, HTML tags go, and `*`/`_` emphasis markers go (an underscore inside a word,
/// as in `hnsw_rs`, stays).
fn rendered_text(markdown: &str) -> String {
    static LINK: OnceLock<Regex> = OnceLock::new();
    static TAG: OnceLock<Regex> = OnceLock::new();
    let link = LINK.get_or_init(|| Regex::new(r"!?\[([^\]]*)\]\([^)]*\)").unwrap());
    let tag = TAG.get_or_init(|| Regex::new(r"</?[A-Za-z][^>]*>").unwrap());

    let mut out = String::new();
    for (text, is_code) in split_code_spans(markdown) {
        if is_code {
            out.push_str(&text);
            continue;
        }
        let text = link.replace_all(&text, "$1");
        let text = tag.replace_all(&text, "");
        let chars: Vec<char> = text.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if c == '*' {
                continue;
            }
            if c == '_' {
                let before = i.checked_sub(1).map(|j| chars[j]);
                let after = chars.get(i + 1).copied();
                let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if !(word(before) && word(after)) {
                    continue;
                }
            }
            out.push(c);
        }
    }
    out
}

/// Splits a line into runs of plain text and inline code spans (`false`/`true`). A code span
/// opens with a run of backticks and closes with a run of the same length; an unmatched run is
/// plain text. A span's content loses one leading and trailing space when it has both.
fn split_code_spans(line: &str) -> Vec<(String, bool)> {
    let chars: Vec<char> = line.chars().collect();
    let mut parts = Vec::new();
    let mut plain = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            plain.push(chars[i]);
            i += 1;
            continue;
        }
        let open = chars[i..].iter().take_while(|&&c| c == '`').count();
        let mut j = i + open;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let run = chars[j..].iter().take_while(|&&c| c == '`').count();
                if run == open {
                    close = Some(j);
                    break;
                }
                j += run;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                parts.push((std::mem::take(&mut plain), false));
                let mut code: String = chars[i + open..end].iter().collect();
                if code.len() >= 2
                    && code.starts_with(' ')
                    && code.ends_with(' ')
                    && !code.trim().is_empty()
                {
                    code = code[1..code.len() - 1].to_string();
                }
                parts.push((code, true));
                i = end + open;
            }
            None => {
                plain.extend(&chars[i..i + open]);
                i += open;
            }
        }
    }
    parts.push((plain, false));
    parts
}

/// The lines of a markdown file that are not inside a fenced code block (``` or ~~~), with
/// their 1-based line numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|&c| c == m).count());
        match fence {
            Some((c, n)) => {
                if marker == Some(c) && run >= n && trimmed[run..].trim().is_empty() {
                    fence = None;
                }
            }
            None => {
                if let Some(m) = marker.filter(|_| run >= 3) {
                    // a backtick fence's info string may not hold a backtick
                    if m == '~' || !trimmed[run..].contains('`') {
                        fence = Some((m, run));
                        continue;
                    }
                }
                out.push((index + 1, line));
            }
        }
    }
    out
}

/// Every anchor a markdown file defines: its ATX headings slugged, duplicates numbered `-1`,
/// `-2`, ... in order, and explicit `<a name>`/`id` anchors.
fn anchors(text: &str) -> HashSet<String> {
    static HEADING: OnceLock<Regex> = OnceLock::new();
    static HTML_ANCHOR: OnceLock<Regex> = OnceLock::new();
    let heading = HEADING
        .get_or_init(|| Regex::new(r"^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$").unwrap());
    let html_anchor =
        HTML_ANCHOR.get_or_init(|| Regex::new(r#"<a\s[^>]*?(?:name|id)="([^"]+)""#).unwrap());

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = HashSet::new();
    for (_, line) in prose_lines(text) {
        if let Some(captures) = heading.captures(line) {
            let base = slug(captures.get(1).map_or("", |m| m.as_str()));
            let count = seen.entry(base.clone()).or_insert(0);
            out.insert(if *count == 0 {
                base.clone()
            } else {
                format!("{base}-{count}")
            });
            *count += 1;
        }
        for captures in html_anchor.captures_iter(line) {
            out.insert(captures[1].to_string());
        }
    }
    out
}

/// The link targets of a markdown file outside code, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    static INLINE: OnceLock<Regex> = OnceLock::new();
    static DEFINITION: OnceLock<Regex> = OnceLock::new();
    let inline = INLINE.get_or_init(|| {
        Regex::new(r#"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)"#).unwrap()
    });
    let definition =
        DEFINITION.get_or_init(|| Regex::new(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)").unwrap());

    let mut out = Vec::new();
    for (number, line) in prose_lines(text) {
        // inline code is blanked out, not removed, so that `[x](y)` inside it is not a link
        let prose: String = split_code_spans(line)
            .into_iter()
            .map(|(part, is_code)| {
                if is_code {
                    " ".repeat(part.chars().count() + 2)
                } else {
                    part
                }
            })
            .collect();
        for captures in inline
            .captures_iter(&prose)
            .chain(definition.captures_iter(&prose))
        {
            let target = captures[1].trim_start_matches('<').trim_end_matches('>');
            out.push((number, target.to_string()));
        }
    }
    out
}

/// `%20` and friends in a link target, decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks every link of `file` (a markdown file under `root`). Returns how many links were
/// checked and one message per broken link, naming the file and line, the link, and what is
/// missing.
fn check_file(
    root: &Path,
    file: &Path,
    anchor_cache: &mut HashMap<PathBuf, HashSet<String>>,
) -> (usize, Vec<String>) {
    let shown = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut problems = Vec::new();
    let mut checked = 0;
    for (line, target) in links(&text) {
        let lower = target.to_ascii_lowercase();
        if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("mailto:")
        {
            continue;
        }
        checked += 1;
        let at = format!("{}:{line}: link `{target}`", shown(file));
        if target.is_empty() {
            problems.push(format!("{at}: the target is empty"));
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (percent_decode(path), Some(percent_decode(anchor))),
            None => (percent_decode(&target), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else if let Some(from_root) = path.strip_prefix('/') {
            root.join(from_root)
        } else {
            file.parent().unwrap().join(&path)
        };
        if !resolved.exists() {
            problems.push(format!(
                "{at}: `{path}` does not exist (looked for {})",
                shown(&resolved)
            ));
            continue;
        }
        let Some(anchor) = anchor.filter(|a| !a.is_empty()) else {
            continue;
        };
        if resolved.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let key = resolved.canonicalize().unwrap_or_else(|_| resolved.clone());
        let defined = anchor_cache
            .entry(key)
            .or_insert_with(|| anchors(&std::fs::read_to_string(&resolved).unwrap_or_default()));
        if !defined.contains(&anchor) {
            problems.push(format!(
                "{at}: {} has no heading with the anchor `#{anchor}`",
                shown(&resolved)
            ));
        }
    }
    (checked, problems)
}

/// README.md and every markdown file in docs/, sorted.
fn documentation(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = documentation(root);
    assert!(files.len() > 1, "docs/ holds no markdown file");
    let mut cache = HashMap::new();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let (links, found) = check_file(root, file, &mut cache);
        if file.ends_with("README.md") && file.parent() == Some(root) {
            // the README links into docs/: finding none means the link pattern broke
            assert!(links > 0, "README.md: no relative link found");
        }
        checked += links;
        problems.extend(found);
    }
    assert!(
        checked >= files.len(),
        "only {checked} relative links in {} files",
        files.len()
    );
    assert!(
        problems.is_empty(),
        "{} broken link(s) in README.md and docs/:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(
        slug("`POST /v1/route`: the routing decision"),
        "post-v1route-the-routing-decision"
    );
    assert_eq!(slug("`GET /health`, `GET /ready`"), "get-health-get-ready");
    assert_eq!(
        slug("Robustness: fuzzing, overload and soak"),
        "robustness-fuzzing-overload-and-soak"
    );
    assert_eq!(slug("1. Signals"), "1-signals");
    assert_eq!(
        slug("The index and its three hnsw_rs changes"),
        "the-index-and-its-three-hnsw_rs-changes"
    );
    assert_eq!(
        slug("How the encoder's defaults were chosen"),
        "how-the-encoders-defaults-were-chosen"
    );
    assert_eq!(
        slug("Envoy ext_proc (and llm-d / Gateway API Inference Extension)"),
        "envoy-ext_proc-and-llm-d--gateway-api-inference-extension"
    );
    assert_eq!(
        slug("**Bold** and _emphasis_ with [a link](x.md)"),
        "bold-and-emphasis-with-a-link"
    );
    assert_eq!(slug("Ünïcode Überschrift"), "ünïcode-überschrift");

    let numbered =
        anchors("# Title\n## Notes\ntext\n## Notes\n```\n## not a heading\n```\n## Notes ##\n");
    let mut numbered: Vec<_> = numbered.into_iter().collect();
    numbered.sort();
    assert_eq!(numbered, ["notes", "notes-1", "notes-2", "title"]);
}

#[test]
fn broken_links_are_reported_and_links_in_code_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/other.md"), "# Other\n\n## Eviction\n").unwrap();
    let page = "# Page\n\n## A `code` heading\n\n\
        [fine](other.md#eviction), [same file](#a-code-heading), [folder](../docs), [web](https://example.com/x#y)\n\
        [missing file](nowhere.md) and [missing anchor](other.md#expiry) and [bad self](#nope)\n\
        `[in inline code](nowhere.md)` and ``[in a double span](nowhere.md)``\n\
        ```md\n[in a fence](nowhere.md)\n```\n\
        ![image](missing.png)\n\
        [ref]: gone.md\n";
    std::fs::write(root.join("docs/page.md"), page).unwrap();

    let (checked, problems) = check_file(root, &root.join("docs/page.md"), &mut HashMap::new());
    assert_eq!(checked, 8, "{problems:#?}");
    assert_eq!(
        problems,
        [
            "docs/page.md:6: link `nowhere.md`: `nowhere.md` does not exist (looked for docs/nowhere.md)",
            "docs/page.md:6: link `other.md#expiry`: docs/other.md has no heading with the anchor `#expiry`",
            "docs/page.md:6: link `#nope`: docs/page.md has no heading with the anchor `#nope`",
            "docs/page.md:11: link `missing.png`: `missing.png` does not exist (looked for docs/missing.png)",
            "docs/page.md:12: link `gone.md`: `gone.md` does not exist (looked for docs/gone.md)",
        ]
    );
}

/// The layout in docs/architecture.md matches the tree: every path it names at the start of a
/// line exists, and every folder of the workspace's code (top level, `src/`, `src/*/`,
/// `plugins/`) is named in it, so a new module cannot go undocumented.
#[test]
fn the_architecture_layout_matches_the_tree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("docs/architecture.md")).expect("docs/architecture.md");
    let block = text
        .split("## Layout")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("a fenced layout block under `## Layout`");
    let named: Vec<&str> = block
        .lines()
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        named.len() > 20,
        "the layout names the tree's parts: {named:?}"
    );
    for path in &named {
        assert!(
            root.join(path).exists(),
            "docs/architecture.md names `{path}`, which the tree lacks"
        );
    }
    let mut folders = Vec::new();
    for parent in ["", "src", "plugins"] {
        for entry in std::fs::read_dir(root.join(parent)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir()
                && !name.starts_with('.')
                && !["target"].contains(&name.as_str())
            {
                folders.push(if parent.is_empty() {
                    format!("{name}/")
                } else {
                    format!("{parent}/{name}/")
                });
            }
        }
    }
    for sub in std::fs::read_dir(root.join("src"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
    {
        for entry in std::fs::read_dir(sub.path())
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
        {
            folders.push(format!(
                "src/{}/{}/",
                sub.file_name().to_string_lossy(),
                entry.file_name().to_string_lossy()
            ));
        }
    }
    for folder in folders {
        assert!(
            block.contains(&folder),
            "`{folder}` is in the tree but not in docs/architecture.md's layout"
        );
    }
}
