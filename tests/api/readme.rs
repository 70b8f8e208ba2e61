//! Runs every httpie example of the README, in order, with the real `http`
//! command against a real connector, and checks each answer against the one
//! the README shows. In a shown answer, a string holding `...` stands for
//! what differs on every run (ids, times, host ports): `"..."` matches any
//! value, `"...-web-1"` any string ending in `-web-1`.

use std::process::Command;

use serde_json::Value;

use crate::support::app::{AppOptions, TestApp};
use crate::support::docker::{docker, TEST_IMAGE};

/// The local images the README's examples name.
const README_IMAGES: [&str; 2] = ["demo/hello:1", "demo/hello:2"];

/// The README's image names, tagged onto the test image while the test runs.
struct ReadmeImages;

impl ReadmeImages {
    fn tag() -> Self {
        for image in README_IMAGES {
            docker(&["tag", TEST_IMAGE, image]);
        }
        ReadmeImages
    }
}

impl Drop for ReadmeImages {
    fn drop(&mut self) {
        // Only the tags go; the image stays under its own name.
        let _ = Command::new("docker")
            .arg("rmi")
            .args(README_IMAGES)
            .output();
    }
}

/// The README section whose examples run against a connector that has
/// `auth_token` set and an `autoscaler` token; `$TOKEN` and
/// `$AUTOSCALER_TOKEN` in them stand for those.
const ACCESS_CONTROL_SECTION: &str = "## Access control";

/// The tokens the access-control examples run with.
const README_TOKEN: &str = "readme-token-5d1c8e2f9a3b7046";
const README_AUTOSCALER_TOKEN: &str = "readme-autoscaler-3e7a1c9f5b2d8064";

/// One `$ http ...` example and the answer the README shows for it.
struct Example {
    argv: Vec<String>,
    answer: Answer,
    /// Whether it sits in the access-control section.
    needs_token: bool,
}

/// An HTTP answer as httpie prints it: status line, headers (names
/// lowercased), then, after a blank line, the body.
struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn parse(text: &str) -> Answer {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut head_lines = head.lines();
        let status_line = head_lines.next().unwrap_or_default().to_owned();
        let headers = head_lines
            .map(|h| {
                let (name, value) = h.split_once(": ").unwrap_or((h, ""));
                (name.to_ascii_lowercase(), value.to_owned())
            })
            .collect();
        Answer {
            status_line,
            headers,
            body: body.to_owned(),
        }
    }

    /// The body as JSON, `None` when there is none.
    fn json(&self, context: &str) -> Option<Value> {
        (!self.body.trim().is_empty()).then(|| {
            serde_json::from_str(&self.body)
                .unwrap_or_else(|_| panic!("{context}: body is not JSON: {:?}", self.body))
        })
    }
}

/// Whether `actual` is what `shown` shows, with `...` in a shown string
/// standing for anything (see the module's documentation).
fn shown_matches(shown: &Value, actual: &Value) -> bool {
    match (shown, actual) {
        (Value::String(pattern), _) if pattern.contains("...") => {
            let (prefix, suffix) = pattern.split_once("...").unwrap_or_default();
            match actual {
                Value::String(text) => {
                    text.len() >= prefix.len() + suffix.len()
                        && text.starts_with(prefix)
                        && text.ends_with(suffix)
                }
                _ => prefix.is_empty() && suffix.is_empty(),
            }
        }
        (Value::Object(shown), Value::Object(actual)) => {
            shown.len() == actual.len()
                && shown
                    .iter()
                    .all(|(key, value)| actual.get(key).is_some_and(|a| shown_matches(value, a)))
        }
        (Value::Array(shown), Value::Array(actual)) => {
            shown.len() == actual.len()
                && shown.iter().zip(actual).all(|(s, a)| shown_matches(s, a))
        }
        _ => shown == actual,
    }
}

#[test]
fn an_ellipsis_in_a_shown_answer_matches_what_differs_per_run() {
    use serde_json::json;
    let shown = json!({"id": "...", "name": "...-web-1", "n": 3});
    assert!(shown_matches(
        &shown,
        &json!({"id": 17, "name": "t1-web-1", "n": 3})
    ));
    assert!(!shown_matches(
        &shown,
        &json!({"id": 17, "name": "t1-web-2", "n": 3})
    ));
    assert!(!shown_matches(
        &shown,
        &json!({"id": 17, "name": "t1-web-1", "n": 4})
    ));
    assert!(!shown_matches(
        &shown,
        &json!({"id": 17, "name": "t1-web-1"})
    ));
    assert!(!shown_matches(&json!(["..."]), &json!([])));
}

fn examples(readme: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut section = "";
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("## ") {
            section = line;
        }
        let Some(command) = line.strip_prefix("$ http ") else {
            continue;
        };
        let argv = shell_words::split(command).expect("a README example splits like a shell line");
        let shown: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        found.push(Example {
            argv,
            answer: Answer::parse(&shown.join("\n")),
            needs_token: section == ACCESS_CONTROL_SECTION,
        });
    }
    found
}

/// Runs httpie against the connector on `port`.
fn run_httpie(argv: &[String], port: u16) -> Answer {
    let argv: Vec<String> = argv
        .iter()
        .map(|a| {
            a.replace(":7051/", &format!("127.0.0.1:{port}/"))
                .replace("$TOKEN", README_TOKEN)
                .replace("$AUTOSCALER_TOKEN", README_AUTOSCALER_TOKEN)
        })
        .collect();
    let out = Command::new("http")
        .args(["--ignore-stdin", "--print=hb", "--pretty=none"])
        .args(&argv)
        .output()
        .expect("httpie is needed for the README tests: apt-get install httpie");
    Answer::parse(&String::from_utf8_lossy(&out.stdout))
}

#[tokio::test]
async fn every_httpie_example_in_the_readme_gives_the_documented_answer() {
    let app = TestApp::spawn().await;
    // The README's table, with the token in clear rather than its digest.
    let autoscaler = format!(
        "{{autoscaler={{token=\"{README_AUTOSCALER_TOKEN}\",scopes=[\"read\",\"scale\"],services=[\"skynet_*\"]}}}}"
    );
    let guarded = TestApp::spawn_with(
        AppOptions::new()
            .env("ROCKET_AUTH_TOKEN", README_TOKEN)
            .env("ROCKET_TOKENS", &autoscaler),
    )
    .await;
    let _tags = ReadmeImages::tag();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let examples = examples(&readme);
    assert!(
        examples.len() >= 10,
        "only {} httpie examples found in the README",
        examples.len()
    );
    assert!(
        examples.iter().filter(|e| e.needs_token).count() >= 2,
        "the access-control section lost its examples"
    );

    for example in &examples {
        let shown = format!("http {}", example.argv.join(" "));
        let expected = &example.answer;
        assert!(
            !expected.status_line.is_empty(),
            "{shown}: the README shows no answer"
        );
        let port = if example.needs_token {
            guarded.port
        } else {
            app.port
        };
        let actual = run_httpie(&example.argv, port);
        assert_eq!(actual.status_line, expected.status_line, "{shown}");
        for header in &expected.headers {
            assert!(
                actual.headers.contains(header),
                "{shown}: no {header:?} in {:?}",
                actual.headers
            );
        }
        let (actual, expected) = (actual.json(&shown), expected.json(&shown));
        assert!(
            match (&expected, &actual) {
                (Some(expected), Some(actual)) => shown_matches(expected, actual),
                _ => expected == actual,
            },
            "{shown}: the README shows {expected:#?}\nbut the answer is {actual:#?}"
        );
    }
    assert!(
        app.containers(None).is_empty(),
        "the walkthrough ends with no container"
    );
}

/// The README's `$ curl -sN ...` line that follows the event stream, with
/// the `event:` names it shows, in order.
fn stream_example(readme: &str) -> (String, Vec<String>) {
    let mut lines = readme.lines();
    let command = lines
        .by_ref()
        .find_map(|line| line.strip_prefix("$ curl -sN "))
        .expect("the README shows the event stream with curl -sN");
    let shown = lines
        .take_while(|line| !line.starts_with("```"))
        .filter_map(|line| line.strip_prefix("event:"))
        .map(str::to_owned)
        .collect();
    (command.trim_matches('\'').to_owned(), shown)
}

#[tokio::test]
async fn the_readme_event_stream_example_shows_those_events() {
    let app = TestApp::spawn().await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (url, shown) = stream_example(&readme);
    assert!(!shown.is_empty(), "the README shows no event");
    let url = url.replace("127.0.0.1:7051", &format!("127.0.0.1:{}", app.port));
    app.create_service("api", serde_json::json!({})).await;
    // curl ends the stream itself, after long enough for the scale below.
    let curl = tokio::process::Command::new("curl")
        .args(["-sN", "--max-time", "8", &url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl is needed for the README's stream example");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let scaled = app.scale("api", serde_json::json!(1)).await;
    assert_eq!(scaled.status, 200, "{scaled:?}");
    let output = curl.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let seen: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("event:"))
        .collect();
    assert_eq!(seen, shown, "curl printed:\n{text}");
    assert_eq!(app.scale("api", serde_json::json!(0)).await.status, 200);
    assert_eq!(app.delete("api").await.status, 204);
}
