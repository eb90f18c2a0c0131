//! Our `webhook-signature` headers checked by the official Standard Webhooks Python library, so a
//! mistake shared by our signer and our own tests still fails here.
//!
//! The library is installed once into a virtualenv under the target directory and reused; the
//! test fails, never skips, when `python3` or the package index cannot be reached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hookline_dispatcher::sign::{Signer, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use serde_json::{Value, json};

/// The pinned release of <https://pypi.org/project/standardwebhooks/>.
const STANDARDWEBHOOKS: &str = "1.1.0";

const SECRET_A: &str = "whsec_aG9va2xpbmUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OWFi";
const SECRET_B: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_C: &str = "whsec_dW5yZWxhdGVkLXJlY2VpdmVyLXNlY3JldA==";

/// Reads `[{name, secret, headers, body_b64}]` on stdin and prints
/// `{version, results: [{name, ok, error}]}`. The body travels as base64 so the library sees the
/// exact bytes we signed.
const VERIFY: &str = r#"
import base64, json, sys
from importlib.metadata import version
import standardwebhooks

results = []
for case in json.load(sys.stdin):
    try:
        standardwebhooks.Webhook(case["secret"]).verify(base64.b64decode(case["body_b64"]), case["headers"])
        results.append({"name": case["name"], "ok": True, "error": None})
    except Exception as error:
        results.append({"name": case["name"], "ok": False, "error": f"{type(error).__name__}: {error}"})
json.dump({"version": version("standardwebhooks"), "results": results}, sys.stdout)
"#;

/// One message for the library to verify.
struct Case {
    name: &'static str,
    /// The secret the receiver verifies with.
    secret: &'static str,
    id: &'static str,
    timestamp: i64,
    signature: String,
    /// The body the receiver got, which differs from the signed one in the tampered cases.
    body: Vec<u8>,
    /// Whether the library must accept it.
    valid: bool,
}

impl Case {
    /// A message signed by `signer` and delivered unchanged.
    fn signed(
        name: &'static str,
        signer: &Signer,
        secret: &'static str,
        id: &'static str,
        body: &[u8],
    ) -> Self {
        let timestamp = now();
        Self {
            name,
            secret,
            id,
            timestamp,
            signature: signer.signature(id, timestamp, body),
            body: body.to_vec(),
            valid: true,
        }
    }

    /// The case as the script reads it, with the headers named by our constants.
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "secret": self.secret,
            "headers": {
                WEBHOOK_ID: self.id,
                WEBHOOK_TIMESTAMP: self.timestamp.to_string(),
                WEBHOOK_SIGNATURE: self.signature,
            },
            "body_b64": STANDARD.encode(&self.body),
        })
    }
}

#[test]
fn official_python_library_verifies_our_signatures() {
    let python = venv_python();

    let a = Signer::new(&[SECRET_A.to_owned()]).unwrap();
    let rotating = Signer::new(&[SECRET_A.to_owned(), SECRET_B.to_owned()]).unwrap();
    let event =
        br#"{"event":"customer.alert.created","account_external_id":"cus_123","severity":"high"}"#;
    let unicode = r#"{"message":"Grüße aus Köln — 東京 🚀","emoji":"👍🏽","escaped":"\u00e9\n"}"#;
    let large = large_body(100 * 1024);

    let mut tampered = Case::signed("tampered body", &a, SECRET_A, "msg_tamper", event);
    tampered.body = event.to_vec();
    tampered.body[10] ^= 0x01;
    tampered.valid = false;
    let mut other_id = Case::signed("other id", &a, SECRET_A, "msg_original", event);
    other_id.id = "msg_replayed";
    other_id.valid = false;
    let mut unrelated = Case::signed("unrelated secret", &rotating, SECRET_C, "msg_rot", event);
    unrelated.valid = false;

    let cases = [
        Case::signed("event", &a, SECRET_A, "msg_2Kx1", event),
        Case::signed("unicode body", &a, SECRET_A, "msg_utf8", unicode.as_bytes()),
        Case::signed("empty object", &a, SECRET_A, "msg_empty", b"{}"),
        Case::signed("100 KiB body", &a, SECRET_A, "msg_large", &large),
        Case::signed(
            "rotation, old secret",
            &rotating,
            SECRET_A,
            "msg_rot",
            event,
        ),
        Case::signed(
            "rotation, new secret",
            &rotating,
            SECRET_B,
            "msg_rot",
            event,
        ),
        tampered,
        other_id,
        unrelated,
    ];
    assert_eq!(large.len(), 100 * 1024);
    assert_eq!(cases[4].signature.split(' ').count(), 2);

    let output = verify_with_python(&python, &cases);
    assert_eq!(
        output["version"], STANDARDWEBHOOKS,
        "the venv holds another release of standardwebhooks"
    );
    let results = output["results"].as_array().unwrap();
    assert_eq!(results.len(), cases.len(), "{output}");
    let mut failures = Vec::new();
    for (case, result) in cases.iter().zip(results) {
        assert_eq!(result["name"], case.name);
        let error = result["error"].as_str().unwrap_or("");
        let as_expected = if case.valid {
            result["ok"] == true
        } else {
            // Refused for the signature, not for a clock or header problem.
            result["ok"] == false
                && error == "WebhookVerificationError: No matching signature found"
        };
        if !as_expected {
            failures.push(format!(
                "{}: expected {}, library said {result}",
                case.name,
                if case.valid { "valid" } else { "rejected" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs the library over `cases` in one Python process.
fn verify_with_python(python: &Path, cases: &[Case]) -> Value {
    let input = Value::from(cases.iter().map(Case::to_json).collect::<Vec<_>>()).to_string();
    let mut child = Command::new(python)
        .args(["-c", VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.display()));
    // Written from a thread: the 100 KiB case is larger than a pipe buffer.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "the verification script failed: {}",
        describe(&output)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("unreadable script output ({error}): {}", describe(&output)))
}

/// The Python of a virtualenv holding the pinned library, created on first use at
/// `<target>/python-venv`. A new venv is built beside it and renamed into place, so an
/// interrupted install is never mistaken for a good one and concurrent runs do not share a
/// half-built venv.
fn venv_python() -> PathBuf {
    let venv = target_dir().join("python-venv");
    if has_library(&venv) {
        return python_in(&venv);
    }
    let started = std::time::Instant::now();
    let guard =
        RemoveOnDrop(venv.with_file_name(format!("python-venv.{}.tmp", std::process::id())));
    let building = guard.0.as_path();
    let _ = std::fs::remove_dir_all(building);
    std::fs::create_dir_all(target_dir()).unwrap();
    run(
        Command::new("python3").arg("-m").arg("venv").arg(building),
        "create a virtualenv with `python3 -m venv` (install python3 and python3-venv)",
    );
    run(
        Command::new(python_in(building)).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("standardwebhooks=={STANDARDWEBHOOKS}"),
        ]),
        "install standardwebhooks with pip (it needs to reach PyPI, or set PIP_INDEX_URL)",
    );
    if !has_library(&venv) {
        let _ = std::fs::remove_dir_all(&venv);
        // Another run may have won the race since; its venv is as good as ours.
        if std::fs::rename(building, &venv).is_err() && !has_library(&venv) {
            panic!("cannot move {} to {}", building.display(), venv.display());
        }
    }
    eprintln!(
        "Installed standardwebhooks {STANDARDWEBHOOKS} into {} in {:.1?}.",
        venv.display(),
        started.elapsed()
    );
    assert!(
        has_library(&venv),
        "standardwebhooks still not importable in {}",
        venv.display()
    );
    python_in(&venv)
}

/// Removes a half-built venv however its build ends, a failed `pip install` included.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `venv` imports the pinned release of the library.
fn has_library(venv: &Path) -> bool {
    let check = format!(
        "import standardwebhooks; from importlib.metadata import version; \
         assert version('standardwebhooks') == '{STANDARDWEBHOOKS}'"
    );
    Command::new(python_in(venv))
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn python_in(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// `CARGO_TARGET_DIR` when set (relative to the workspace, where cargo is usually run), the
/// workspace's `target/` otherwise.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// Runs `command`, failing the test with `what` and the command's output when it does not
/// succeed.
fn run(command: &mut Command, what: &str) {
    match command.output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!("cannot {what}: {:?} {}", command, describe(&output)),
        Err(error) => panic!("cannot {what}: {:?} did not start: {error}", command),
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exited with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn now() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(seconds).unwrap()
}

/// A JSON object of exactly `len` bytes, with multi-byte characters spread through it.
fn large_body(len: usize) -> Vec<u8> {
    let mut body = br#"{"data":""#.to_vec();
    let closing = br#""}"#;
    let filler = "hookline é 🚀 ".as_bytes();
    while body.len() + filler.len() + closing.len() <= len {
        body.extend_from_slice(filler);
    }
    body.resize(len - closing.len(), b'x');
    body.extend_from_slice(closing);
    body
}
