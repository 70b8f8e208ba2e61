//! Every relative link in README.md and docs/*.md resolves: the file (or
//! directory) it names exists, relative to the linking file, and an anchor
//! (`file.md#heading`, or `#heading` in the same file) names a heading of the
//! target file by GitHub's slug. Links in fenced code blocks and in code spans
//! are not links; links with a scheme (`https:`, `mailto:`, ...) are not
//! checked.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// README.md and every markdown file in docs/, in a stable order.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .map(|entries| {
            entries
                .map(|e| e.expect("docs/ lists").path())
                .filter(|p| p.extension().is_some_and(|e| e == "md"))
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    docs.insert(0, root.join("README.md"));
    docs
}

/// The lines of a markdown text that are not inside a fenced code block,
/// with their line numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<String> = None;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker: String = trimmed
            .chars()
            .take_while(|&c| c == '`' || c == '~')
            .collect();
        let opens = marker.len() >= 3 && marker.chars().all(|c| c == marker.as_bytes()[0] as char);
        match &fence {
            Some(open) => {
                // A fence closes with at least as many of the same character.
                if opens
                    && marker.starts_with(open.as_str())
                    && trimmed[marker.len()..].trim().is_empty()
                {
                    fence = None;
                }
            }
            None if opens && line.len() - trimmed.len() <= 3 => fence = Some(marker),
            None => lines.push((i + 1, line)),
        }
    }
    lines
}

/// The line without its code spans (`` `...` ``), which hold no links.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                // An unclosed backtick is literal text.
                out.push_str(&rest[start..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of the inline links and images (`[text](target "title")`)
/// and of the reference definitions (`[label]: target`) on one line.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        if let Some(close) = trimmed.find("]:") {
            if let Some(target) = trimmed[close + 2..].split_whitespace().next() {
                targets.push(target.trim_matches(|c| c == '<' || c == '>').to_owned());
            }
            return targets;
        }
    }
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let inner = &rest[at + 2..];
        // The destination ends at the parenthesis that balances the opening one.
        let mut depth = 0;
        let mut end = inner.len();
        for (i, c) in inner.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = i;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let destination = inner[..end].trim();
        let target = if let Some(bracketed) = destination.strip_prefix('<') {
            bracketed.split('>').next().unwrap_or_default()
        } else {
            destination.split_whitespace().next().unwrap_or_default()
        };
        targets.push(target.to_owned());
        rest = &inner[end..];
    }
    targets
}

/// Whether a target names a scheme (`https:`, `mailto:`, ...), so it is not
/// a path in this repository.
fn has_scheme(target: &str) -> bool {
    match target.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// GitHub's anchor for a heading's text: lowercase, everything but letters,
/// digits, spaces, hyphens and underscores dropped, spaces made hyphens.
fn slug(heading: &str) -> String {
    // A link in a heading contributes its text only.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(at) = rest.find("](") {
        text.push_str(&rest[..at]);
        rest = rest[at + 2..]
            .split_once(')')
            .map_or("", |(_, after)| after);
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown text's ATX headings (`# ...` to `###### ...`),
/// a repeated one suffixed `-1`, `-2`, ... as GitHub does.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose_lines(text) {
        let trimmed = line.trim_start();
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || line.len() - trimmed.len() > 3 {
            continue;
        }
        let heading = &trimmed[hashes..];
        if !(heading.is_empty() || heading.starts_with(' ')) {
            continue;
        }
        // An optional closing sequence of #s is not part of the heading.
        let heading = heading.trim().trim_end_matches('#').trim_end();
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// Every problem with the relative links of `text`, the markdown file at
/// `path`, one line each.
fn broken_links(path: &Path, text: &str) -> (usize, Vec<String>) {
    let dir = path.parent().expect("a file has a directory");
    let mut checked = 0;
    let mut problems = Vec::new();
    for (number, line) in prose_lines(text) {
        for target in link_targets(line) {
            if target.is_empty() || has_scheme(&target) {
                continue;
            }
            checked += 1;
            let place = format!("{}:{number}: ({target})", path.display());
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = file.split('?').next().unwrap_or_default();
            let linked = if file.is_empty() {
                path.to_path_buf()
            } else {
                dir.join(file)
            };
            if !linked.exists() {
                problems.push(format!("{place}: no such file {}", linked.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if !linked.extension().is_some_and(|e| e == "md") {
                problems.push(format!(
                    "{place}: an anchor into a file that is not markdown cannot be checked"
                ));
                continue;
            }
            let target_text = if file.is_empty() {
                text.to_owned()
            } else {
                fs::read_to_string(&linked)
                    .unwrap_or_else(|e| panic!("{place}: cannot read {}: {e}", linked.display()))
            };
            if !anchors(&target_text).contains(anchor) {
                problems.push(format!(
                    "{place}: {} has no heading with the anchor #{anchor}",
                    linked.display()
                ));
            }
        }
    }
    (checked, problems)
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for path in documents() {
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let (n, mut found) = broken_links(&path, &text);
        checked += n;
        problems.append(&mut found);
    }
    assert!(
        checked > 0,
        "no relative link found: the link scanner is broken"
    );
    assert!(
        problems.is_empty(),
        "{} of {checked} relative links do not resolve:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn a_heading_slug_follows_githubs_rule() {
    assert_eq!(slug("Access control"), "access-control");
    assert_eq!(
        slug("Many hosts: the swarm backend"),
        "many-hosts-the-swarm-backend"
    );
    assert_eq!(
        slug("Desired state, self-healing and rolling updates"),
        "desired-state-self-healing-and-rolling-updates"
    );
    assert_eq!(slug("The `auth_token` key (1.0)"), "the-auth_token-key-10");
    assert_eq!(slug("See [the API](api.md)"), "see-the-api");
    assert_eq!(slug("Größe & Ü"), "größe--ü");
}

#[test]
fn a_repeated_heading_gets_a_numbered_anchor() {
    let found = anchors("# Notes\n\n## Notes\n\n### Notes\n");
    for anchor in ["notes", "notes-1", "notes-2"] {
        assert!(found.contains(anchor), "{anchor} missing from {found:?}");
    }
}

#[test]
fn a_broken_link_or_anchor_is_reported_and_code_is_not_a_link() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = "\
# Top

[fine](#top), [missing anchor](#nowhere), [missing file](no/such/file.md),
[web](https://example.com/x.md), ![image](no-such-image.png)

`[in a code span](no-such-code-span.md)`

```md
[in a fence](no-such-fenced.md)
```
";
    let (checked, problems) = broken_links(&readme, text);
    assert_eq!(checked, 4, "{problems:#?}");
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("#nowhere"));
    assert!(problems[1].contains("no/such/file.md"));
    assert!(problems[2].contains("no-such-image.png"));
}
