//! Image references judged twice, by docker and by the connector, which
//! must agree: a reference the connector takes and docker refuses fails
//! every scale of its service, and one it refuses that docker takes is a
//! service that cannot be defined (issue 20).
//!
//! A seeded generator writes a few hundred references, valid ones and ones
//! broken in each part (case, host, port, path separators, tag, digest,
//! length). docker judges each with `docker create --pull=never`: a valid
//! reference to an absent image answers "No such image" and creates
//! nothing; an invalid one answers a reference error. The connector judges
//! each through `POST /service`: 201, or 400 naming `image`. The only
//! difference allowed is the connector's policy that a reference carries a
//! tag or a digest; those cases are counted apart. The ImageRef schema in
//! src/openapi.json must judge them as the connector does, but for the
//! length limit, which it states in words.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use docker_connector::docker::LABEL_INSTANCE;
use futures::future::join_all;
use serde_json::json;

use crate::support::app::TestApp;
use crate::support::figures::record_figures;
use crate::support::openapi::{document, schema_problems};
use crate::support::rng::Rng;

/// How many references each kind of case contributes.
const PER_KIND: usize = 10;

/// docker calls at a time: enough to keep the test within seconds, few
/// enough not to crowd the engine the other tests share.
const PARALLEL_DOCKER: usize = 6;

/// Requests to the connector at a time.
const PARALLEL_HTTP: usize = 8;

/// What docker says, on stderr, when it cannot parse a reference.
const DOCKER_INVALID: [&str; 5] = [
    "invalid reference format",
    "repository name must",
    "invalid checksum digest",
    "unsupported digest algorithm",
    "cannot specify 64-byte hexadecimal strings",
];

/// What docker says when a reference parses but names no local image.
const DOCKER_ABSENT: [&str; 2] = ["No such image", "Unable to find image"];

/// The connector's refusal of an untagged reference, its own policy.
const UNTAGGED: &str = "must include a tag";

/// The connector's refusal of a name too long, which the document's
/// pattern cannot say (it says so in words).
const TOO_LONG: &str = "longer than 255";

/// A verdict on one reference, with what was said.
#[derive(Debug, Clone)]
enum Verdict {
    Valid,
    Invalid(String),
}

/// A reference as parts, so each kind of case can break one of them.
#[derive(Clone)]
struct Parts {
    host: Option<String>,
    path: Vec<String>,
    tag: Option<String>,
    digest: Option<String>,
}

impl Parts {
    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(host) = &self.host {
            out.push_str(host);
            out.push('/');
        }
        out.push_str(&self.path.join("/"));
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const TAG_FIRST: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
const TAG_REST: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

fn pick<'a, T: ?Sized>(rng: &mut Rng, items: &[&'a T]) -> &'a T {
    items[rng.below(items.len() as u64) as usize]
}

fn chars(rng: &mut Rng, set: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| set[rng.below(set.len() as u64) as usize] as char)
        .collect()
}

/// Between `low` and `high` characters of `set`.
fn word(rng: &mut Rng, set: &[u8], low: usize, high: usize) -> String {
    let len = between(rng, low, high);
    chars(rng, set, len)
}

fn between(rng: &mut Rng, low: usize, high: usize) -> usize {
    low + rng.below((high - low + 1) as u64) as usize
}

/// A valid path component: runs of lowercase letters and digits joined by
/// separators docker allows.
fn component(rng: &mut Rng) -> String {
    let mut out = word(rng, LOWER, 1, 6);
    for _ in 0..rng.below(3) {
        out.push_str(pick(rng, &[".", "_", "__", "-", "--", "---"]));
        out.push_str(&word(rng, LOWER, 1, 5));
    }
    out
}

/// A valid host label: letters of either case, digits, inner dashes.
fn label(rng: &mut Rng) -> String {
    let set = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = word(rng, set, 1, 6);
    if rng.below(3) == 0 {
        out.push('-');
        out.push_str(&word(rng, set, 1, 4));
    }
    out
}

fn port(rng: &mut Rng) -> String {
    pick(
        rng,
        &["0", "80", "443", "5000", "65535", "99999999", "00080"],
    )
    .to_owned()
}

/// A host docker takes as one: dotted, with a port, or `localhost`.
fn host(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => "localhost".to_owned(),
        1 => format!("localhost:{}", port(rng)),
        2 => {
            let labels: Vec<String> = (0..between(rng, 2, 4)).map(|_| label(rng)).collect();
            labels.join(".")
        }
        3 => format!("{}:{}", label(rng), port(rng)),
        _ => format!(
            "{}.{}.{}.{}:{}",
            rng.below(256),
            rng.below(256),
            rng.below(256),
            rng.below(256),
            port(rng)
        ),
    }
}

fn tag(rng: &mut Rng) -> String {
    let len = between(rng, 0, 20);
    chars(rng, TAG_FIRST, 1) + &chars(rng, TAG_REST, len)
}

fn digest(rng: &mut Rng) -> String {
    let (algorithm, len) = *pick(rng, &[&("sha256", 64), &("sha384", 96), &("sha512", 128)]);
    format!("{algorithm}:{}", chars(rng, HEX, len))
}

/// A valid tagged or digested reference. Its last path component has a
/// random token of 8, so it names no image this engine has.
fn base(rng: &mut Rng) -> Parts {
    let host = (rng.below(3) == 0).then(|| host(rng));
    let mut path: Vec<String> = (0..rng.below(3)).map(|_| component(rng)).collect();
    path.push(format!("{}-{}", component(rng), chars(rng, LOWER, 8)));
    let (tag, digest) = match rng.below(4) {
        0 => (None, Some(digest(rng))),
        1 => (Some(tag(rng)), Some(digest(rng))),
        _ => (Some(tag(rng)), None),
    };
    Parts {
        host,
        path,
        tag,
        digest,
    }
}

/// An index into `parts.path`.
fn some_component(rng: &mut Rng, parts: &Parts) -> usize {
    rng.below(parts.path.len() as u64) as usize
}

/// Uppercases one letter of `text`, or adds an uppercase letter if it has
/// none.
fn uppercase_one(rng: &mut Rng, text: &str) -> String {
    let letters: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| c.is_ascii_lowercase())
        .map(|(i, _)| i)
        .collect();
    if letters.is_empty() {
        return format!("{text}Q");
    }
    let at = letters[rng.below(letters.len() as u64) as usize];
    let mut out = text.to_owned();
    out.replace_range(at..at + 1, &text[at..at + 1].to_ascii_uppercase());
    out
}

/// A path of the given length in characters: components of 1 to 60
/// characters joined by `/`, `components` of them.
fn path_of_len(rng: &mut Rng, len: usize, components: usize) -> Vec<String> {
    let letters = len - (components - 1);
    let mut sizes = vec![letters / components; components];
    sizes[0] += letters % components;
    sizes.iter().map(|&n| chars(rng, LOWER, n)).collect()
}

/// One kind of case: its part, a description, and how it turns a valid
/// base into a case.
type Kind = (&'static str, &'static str, fn(&mut Rng, Parts) -> String);

/// Every kind of case; each contributes [`PER_KIND`] references.
fn kinds() -> Vec<Kind> {
    vec![
        ("valid", "as generated", |_, p| p.render()),
        ("valid", "with a host", |rng, mut p| {
            p.host = Some(host(rng));
            p.render()
        }),
        ("policy", "untagged", |_, mut p| {
            p.tag = None;
            p.digest = None;
            p.render()
        }),
        ("case", "uppercase in a path component", |rng, mut p| {
            let i = some_component(rng, &p);
            p.path[i] = uppercase_one(rng, &p.path[i]);
            p.render()
        }),
        (
            "case",
            "uppercase first component, no '.' or ':'",
            |rng, mut p| {
                p.host = None;
                let first = word(rng, LOWER, 1, 8);
                p.path.insert(0, uppercase_one(rng, &first));
                p.render()
            },
        ),
        ("case", "uppercase in a host", |rng, mut p| {
            let h = host(rng);
            p.host = Some(uppercase_one(rng, &h));
            p.render()
        }),
        ("case", "localhost in capitals", |rng, mut p| {
            p.host = Some(pick(rng, &["LOCALHOST", "Localhost", "localHost:5000"]).to_owned());
            p.render()
        }),
        ("case", "uppercase in the tag", |rng, mut p| {
            let t = tag(rng);
            p.tag = Some(uppercase_one(rng, &t));
            p.render()
        }),
        ("host", "an empty or dashed label", |rng, mut p| {
            let (a, b) = (label(rng), label(rng));
            let bad = [
                format!("{a}..{b}"),
                format!("{a}.{b}."),
                format!(".{a}.{b}"),
                format!("{a}-.{b}"),
                format!("{a}.-{b}"),
                format!("{a}.{b}-:5000"),
            ];
            p.host = Some(bad[rng.below(bad.len() as u64) as usize].clone());
            p.render()
        }),
        (
            "host",
            "an underscore in a dotted first component",
            |rng, mut p| {
                let a = word(rng, LOWER, 1, 4);
                let options = [
                    format!("{a}_b.c"),
                    format!("{a}__b.io"),
                    format!("{}_b.c", uppercase_one(rng, &a)),
                    format!("{a}_b.c:5000"),
                ];
                p.host = Some(options[rng.below(options.len() as u64) as usize].clone());
                p.render()
            },
        ),
        ("host", "IPv6 in brackets", |rng, mut p| {
            let options = [
                "[::1]",
                "[::1]:5000",
                "[2001:db8::1]:443",
                "[fe80::1%25eth0]",
                "::1",
            ];
            p.host = Some(pick(rng, &options).to_owned());
            p.render()
        }),
        ("host", "a character no host has", |rng, mut p| {
            let c = pick(rng, &["!", "_", "~", "*", "é"]);
            p.host = Some(format!("{}{c}{}.com", label(rng), label(rng)));
            p.render()
        }),
        ("port", "empty, not digits, or twice", |rng, mut p| {
            let h = label(rng);
            let options = [
                format!("{h}.io:"),
                format!("{h}:"),
                format!("{h}.io:http"),
                format!("{h}:5000:5000"),
                format!("{h}.io:-1"),
                format!("{h}:+80"),
                "localhost:".to_owned(),
            ];
            p.host = Some(options[rng.below(options.len() as u64) as usize].clone());
            p.render()
        }),
        ("port", "digits docker takes", |rng, mut p| {
            p.host = Some(format!("{}:{}", label(rng), port(rng)));
            p.render()
        }),
        ("separator", "one docker refuses", |rng, mut p| {
            let i = some_component(rng, &p);
            let sep = pick(
                rng,
                &["___", "..", "._", "_.", ".-", "-.", "-_", "_-", "+", "~"],
            );
            p.path[i] = format!("{}{sep}{}", p.path[i], word(rng, LOWER, 1, 4));
            p.render()
        }),
        ("separator", "one docker takes", |rng, mut p| {
            let i = some_component(rng, &p);
            let sep = pick(rng, &["__", "----", ".", "_", "-"]);
            p.path[i] = format!("{}{sep}{}", p.path[i], word(rng, LOWER, 1, 4));
            p.render()
        }),
        ("separator", "at a component's edge", |rng, mut p| {
            let i = some_component(rng, &p);
            let sep = pick(rng, &[".", "_", "-", "__"]);
            p.path[i] = if rng.below(2) == 0 {
                format!("{sep}{}", p.path[i])
            } else {
                format!("{}{sep}", p.path[i])
            };
            p.render()
        }),
        ("separator", "an empty component", |rng, mut p| {
            match rng.below(3) {
                0 => p.path.insert(some_component(rng, &p), String::new()),
                1 => p.path.push(String::new()),
                _ => p.host = Some(String::new()),
            }
            p.render()
        }),
        ("tag", "128 characters", |rng, mut p| {
            p.tag = Some(chars(rng, TAG_FIRST, 1) + &chars(rng, TAG_REST, 127));
            p.render()
        }),
        ("tag", "129 characters", |rng, mut p| {
            p.tag = Some(chars(rng, TAG_FIRST, 1) + &chars(rng, TAG_REST, 128));
            p.render()
        }),
        ("tag", "a first character of its own", |rng, mut p| {
            let first = pick(rng, &[".", "-", "_", "A", "9"]);
            p.tag = Some(format!("{first}{}", tag(rng)));
            p.render()
        }),
        ("tag", "a character no tag has", |rng, mut p| {
            let c = pick(rng, &["+", "/", ":", "!", "é", "~", "%"]);
            p.tag = Some(format!("{}{c}{}", tag(rng), chars(rng, LOWER, 2)));
            p.render()
        }),
        ("tag", "empty", |rng, mut p| {
            p.tag = Some(String::new());
            if rng.below(2) == 0 {
                p.digest = Some(digest(rng));
            }
            p.render()
        }),
        ("digest", "the wrong length", |rng, mut p| {
            let (algorithm, len) =
                *pick(rng, &[&("sha256", 64), &("sha384", 96), &("sha512", 128)]);
            let len = *pick(rng, &[&(len - 1), &(len + 1), &32, &64, &96, &128]);
            p.digest = Some(format!("{algorithm}:{}", chars(rng, HEX, len)));
            p.render()
        }),
        ("digest", "uppercase hex", |rng, mut p| {
            let digest = digest(rng);
            p.digest = Some(digest.to_ascii_uppercase().replacen("SHA", "sha", 1));
            p.render()
        }),
        (
            "digest",
            "an algorithm docker cannot verify",
            |rng, mut p| {
                let (algorithm, len) = *pick(
                    rng,
                    &[
                        &("md5", 32),
                        &("sha1", 40),
                        &("SHA256", 64),
                        &("sha256+b64", 64),
                        &("blake3", 64),
                        &("Sha512", 128),
                    ],
                );
                p.digest = Some(format!("{algorithm}:{}", chars(rng, HEX, len)));
                p.render()
            },
        ),
        ("digest", "malformed", |rng, mut p| {
            let hex = chars(rng, HEX, 64);
            let options = [
                String::new(),
                "sha256".to_owned(),
                "sha256:".to_owned(),
                format!(":{hex}"),
                format!("sha256:{}g", &hex[1..]),
                format!("sha256-{hex}"),
                format!("1sha:{hex}"),
            ];
            p.digest = Some(options[rng.below(options.len() as u64) as usize].clone());
            p.render()
        }),
        ("length", "one component near 255 in full", |rng, mut p| {
            // docker.io/library/ is 18 characters.
            let full = between(rng, 253, 257);
            p.host = None;
            p.path = path_of_len(rng, full - 18, 1);
            p.render()
        }),
        ("length", "components near 255 in full", |rng, mut p| {
            // docker.io/ is 10 characters.
            let full = between(rng, 253, 257);
            let components = between(rng, 2, 5);
            p.host = None;
            p.path = path_of_len(rng, full - 10, components);
            p.render()
        }),
        ("length", "a host and a path near 255", |rng, mut p| {
            let full = between(rng, 253, 257);
            let h = host(rng);
            let components = between(rng, 1, 4);
            p.path = path_of_len(rng, full - h.len() - 1, components);
            p.host = Some(h);
            p.render()
        }),
        ("length", "docker.io spelled out, near 255", |rng, mut p| {
            let full = between(rng, 253, 257);
            let h = pick(rng, &["docker.io", "index.docker.io"]);
            p.host = Some(h.to_owned());
            p.path = if rng.below(2) == 0 {
                path_of_len(rng, full - 18, 1)
            } else {
                path_of_len(rng, full - 10, 2)
            };
            p.render()
        }),
        ("other", "whitespace", |rng, p| {
            let mut text = p.render();
            let at = rng.below(text.len() as u64 + 1) as usize;
            let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap();
            text.insert_str(at, pick(rng, &[" ", "\t", "\n", "\u{a0}"]));
            text
        }),
        (
            "other",
            "a leading character no reference starts with",
            |rng, p| {
                format!(
                    "{}{}",
                    pick(rng, &["-", ":", "@", "/", ".", "_"]),
                    p.render()
                )
            },
        ),
        ("other", "letters beyond ASCII in the path", |rng, mut p| {
            let i = some_component(rng, &p);
            p.path[i].push_str(pick(rng, &["é", "ß", "ж", "ı"]));
            p.render()
        }),
    ]
}

/// The corpus: [`PER_KIND`] cases of every kind, each with its kind's part
/// and description.
fn corpus(rng: &mut Rng) -> Vec<(String, &'static str, &'static str)> {
    let mut cases = Vec::new();
    for (part, what, make) in kinds() {
        for _ in 0..PER_KIND {
            let parts = base(rng);
            cases.push((make(rng, parts), part, what));
        }
    }
    cases
}

/// docker's verdict: `docker create --pull=never` on the reference, which
/// pulls nothing and names no local image, so it creates nothing. The
/// container would carry `instance`, so TestApp would remove it, should an
/// image by that name exist after all; the test then fails.
fn docker_verdict(reference: &str, instance: &str) -> Verdict {
    let label = format!("{LABEL_INSTANCE}={instance}");
    let out = Command::new("docker")
        .args(["create", "--pull=never", "--label", &label, "--", reference])
        .env_remove("DOCKER_CONTENT_TRUST")
        .output()
        .expect("docker CLI runs");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(
        !out.status.success(),
        "docker created a container from {reference:?}: an image by that name exists here"
    );
    if DOCKER_ABSENT.iter().any(|needle| stderr.contains(needle)) {
        Verdict::Valid
    } else if DOCKER_INVALID.iter().any(|needle| stderr.contains(needle)) {
        Verdict::Invalid(stderr)
    } else {
        panic!("docker's answer to {reference:?} is neither absent nor invalid: {stderr}")
    }
}

/// docker's verdicts on every reference, [`PARALLEL_DOCKER`] at a time.
fn docker_verdicts(references: &[String], instance: &str) -> Vec<Verdict> {
    let next = AtomicUsize::new(0);
    let verdicts = Mutex::new(vec![None; references.len()]);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_DOCKER {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(reference) = references.get(i) else {
                    break;
                };
                let verdict = docker_verdict(reference, instance);
                verdicts.lock().unwrap()[i] = Some(verdict);
            });
        }
    });
    verdicts
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|v| v.expect("every reference judged"))
        .collect()
}

/// The connector's verdict: `POST /service` with the reference; a service
/// it creates (at count 0, so nothing runs) is deleted again.
async fn connector_verdict(app: &TestApp, name: &str, reference: &str) -> Verdict {
    let reply = app.create(json!({"name": name, "image": reference})).await;
    match reply.status {
        201 => {
            let deleted = app.delete(name).await;
            assert!(
                matches!(deleted.status, 200 | 204),
                "delete {name}: {deleted:?}"
            );
            Verdict::Valid
        }
        400 => {
            let error = reply.error();
            assert!(
                error.starts_with("image: "),
                "{reference:?} refused without naming image: {error}"
            );
            Verdict::Invalid(error.to_owned())
        }
        _ => panic!("{reference:?}: unexpected answer {reply:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_connector_judges_image_references_as_docker_does() {
    let (mut rng, seed) = Rng::from_env_or_clock("IMAGE_REFS_SEED");
    let cases = corpus(&mut rng);
    println!(
        "seed {seed} (set IMAGE_REFS_SEED={seed} to replay), {} references",
        cases.len()
    );
    let app = &TestApp::spawn().await;
    let references: Vec<String> = cases.iter().map(|(r, _, _)| r.clone()).collect();

    let began = Instant::now();
    let instance = app.instance.clone();
    let for_docker = references.clone();
    let docker = tokio::task::spawn_blocking(move || docker_verdicts(&for_docker, &instance));
    let mut connector = Vec::new();
    for (chunk_at, chunk) in references.chunks(PARALLEL_HTTP).enumerate() {
        connector.extend(
            join_all(chunk.iter().enumerate().map(|(i, reference)| {
                let name = format!("ref-{}", chunk_at * PARALLEL_HTTP + i);
                async move { connector_verdict(app, &name, reference).await }
            }))
            .await,
        );
    }
    let docker = docker.await.expect("docker's verdicts");
    let took = began.elapsed();

    let mut compared = 0;
    let mut docker_valid = 0;
    let mut untagged = 0;
    let mut disagree = Vec::new();
    for (((reference, part, what), docker), connector) in cases.iter().zip(&docker).zip(&connector)
    {
        match (docker, connector) {
            (Verdict::Valid, Verdict::Invalid(why)) if why.contains(UNTAGGED) => untagged += 1,
            (Verdict::Valid, Verdict::Valid) => {
                compared += 1;
                docker_valid += 1;
            }
            (Verdict::Invalid(_), Verdict::Invalid(_)) => compared += 1,
            _ => {
                compared += 1;
                disagree.push(format!(
                    "{part} ({what}): {reference:?}\n    docker: {docker:?}\n    connector: {connector:?}"
                ));
            }
        }
    }
    println!(
        "image references: {compared} compared, {} disagree ({docker_valid} valid to docker; \
         {untagged} untagged left out as the connector's policy; {:.1} s)",
        disagree.len(),
        took.as_secs_f64()
    );
    record_figures(
        "image-references",
        &[
            (
                "generated references compared with docker's parser",
                compared.to_string(),
            ),
            ("of which docker takes", docker_valid.to_string()),
            ("verdicts that disagree", disagree.len().to_string()),
            (
                "untagged left out (docker takes them, the connector's policy refuses)",
                untagged.to_string(),
            ),
            ("seed", seed.to_string()),
        ],
    );
    assert!(
        disagree.is_empty(),
        "{} of {compared} references judged otherwise than docker does (seed {seed}):\n{}",
        disagree.len(),
        disagree.join("\n")
    );

    // The document's ImageRef pattern says the same, but for the length
    // limit, which it states in words.
    let doc = document();
    let schema = json!({"$ref": "#/components/schemas/ImageRef"});
    let undocumented: Vec<String> = references
        .iter()
        .zip(&connector)
        .filter(|(reference, verdict)| {
            let fits = schema_problems(&doc, &schema, &json!(reference)).is_empty();
            match verdict {
                Verdict::Valid => !fits,
                Verdict::Invalid(why) => fits && !why.contains(TOO_LONG),
            }
        })
        .map(|(reference, verdict)| format!("{reference:?}: connector {verdict:?}"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "the ImageRef schema in src/openapi.json judges otherwise:\n{}",
        undocumented.join("\n")
    );
    assert!(
        untagged >= PER_KIND && docker_valid >= compared / 5 && docker_valid <= compared * 4 / 5,
        "a corpus this lopsided proves little: {docker_valid} of {compared} valid, {untagged} untagged"
    );
}
