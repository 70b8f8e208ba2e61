//! Runs every httpie example of the README, in order, with the real `http`
//! command against a real connector, and checks each answer against the one
//! the README shows.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{docker, TestApp, TEST_IMAGE};

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

/// One `$ http ...` example and the answer the README shows for it.
struct Example {
    argv: Vec<String>,
    status_line: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

fn examples(readme: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(command) = line.strip_prefix("$ http ") else {
            continue;
        };
        let argv = shell_words::split(command).expect("a README example splits like a shell line");
        let answer: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let status_line = answer
            .first()
            .expect("an example shows its answer")
            .to_string();
        let blank = answer
            .iter()
            .position(|l| l.trim().is_empty())
            .unwrap_or(answer.len());
        let headers = answer[1..blank]
            .iter()
            .map(|h| {
                let (name, value) = h.split_once(": ").expect("a header line");
                (name.to_ascii_lowercase(), value.to_owned())
            })
            .collect();
        let body_text = answer
            .get(blank..)
            .map(|rest| rest.join("\n"))
            .unwrap_or_default();
        let body = (!body_text.trim().is_empty())
            .then(|| serde_json::from_str(&body_text).expect("a README body is JSON"));
        found.push(Example {
            argv,
            status_line,
            headers,
            body,
        });
    }
    found
}

/// Runs httpie and splits what it printed into status line, headers, body.
fn run_httpie(argv: &[String], port: u16) -> (String, Vec<(String, String)>, String) {
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.replace(":7051/", &format!("127.0.0.1:{port}/")))
        .collect();
    let out = Command::new("http")
        .args(["--ignore-stdin", "--print=hb", "--pretty=none"])
        .args(&argv)
        .output()
        .expect("httpie is needed for the README tests: apt-get install httpie");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut head_lines = head.lines();
    let status_line = head_lines.next().unwrap_or_default().to_owned();
    let headers = head_lines
        .filter_map(|h| h.split_once(": "))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    (status_line, headers, body.to_owned())
}

#[tokio::test]
async fn every_httpie_example_in_the_readme_gives_the_documented_answer() {
    let app = TestApp::spawn().await;
    let _tags = ReadmeImages::tag();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let examples = examples(&readme);
    assert!(
        examples.len() >= 10,
        "only {} httpie examples found in the README",
        examples.len()
    );

    for example in &examples {
        let shown = example.argv.join(" ");
        let (status_line, headers, body) = run_httpie(&example.argv, app.port);
        assert_eq!(status_line, example.status_line, "http {shown}");
        for (name, value) in &example.headers {
            assert!(
                headers.contains(&(name.clone(), value.clone())),
                "http {shown}: no {name}: {value} in {headers:?}"
            );
        }
        match &example.body {
            Some(expected) => {
                let actual: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|_| panic!("http {shown}: body {body:?}"));
                assert_eq!(&actual, expected, "http {shown}");
            }
            None => assert!(
                body.trim().is_empty(),
                "http {shown}: unexpected body {body:?}"
            ),
        }
    }
    assert!(
        app.containers(None).is_empty(),
        "the walkthrough ends with no container"
    );
}
