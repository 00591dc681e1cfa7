//! Repository tidiness that a reviewer would otherwise check by hand: every Rust file starts
//! with a `//!` line saying what it owns (STYLE.md), and the invariants ARCHITECTURE.md writes
//! as absences hold in the source (no catch-all in the relay's or the agent's error mapping,
//! Redis keys spelled only in `store::redis`, no HTTP in either's use cases, no `json!` answers
//! in the agent, no I/O and no import circle in `approvd-proto`, no SDK in the relay, one
//! reader of the system clock, one Redis key table, every workspace crate in the image's build
//! layer), and every test SECURITY.md names as the proof of a mitigation exists.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file below `dir` (relative to the workspace) with its text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&workspace().join(dir), &mut files);
    assert!(!files.is_empty(), "no Rust files under {dir}");
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("readable source");
            (file, text)
        })
        .collect()
}

/// The files under `dir` whose text contains any of `needles`.
fn files_containing(dir: &str, needles: &[&str]) -> Vec<String> {
    sources(dir)
        .into_iter()
        .filter(|(_, text)| needles.iter().any(|needle| text.contains(needle)))
        .map(|(file, _)| file.display().to_string())
        .collect()
}

#[test]
fn every_rust_file_says_what_it_owns() {
    let mut files = Vec::new();
    for crate_dir in [
        "proto",
        "client",
        "relay",
        "agent",
        "cli",
        "loadtest",
        "tests",
        "fuzz-targets",
        "fuzz",
        "examples",
        "deploy",
    ] {
        rust_files(&workspace().join(crate_dir), &mut files);
    }
    assert!(files.len() > 40, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|file| {
            !std::fs::read_to_string(file)
                .unwrap_or_default()
                .starts_with("//!")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!` line: {missing:?}"
    );
}

/// A source file's text without its `#[cfg(test)]` module (tests may do what code may not).
fn code_of(file: &str) -> String {
    let text = std::fs::read_to_string(workspace().join(file)).expect("source");
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_error_mappings_have_no_catch_all() {
    for file in ["relay/src/http/problem.rs", "agent/src/http.rs"] {
        assert!(
            !code_of(file).contains("_ =>"),
            "{file} must match every error variant explicitly"
        );
    }
}

#[test]
fn the_agent_answers_only_with_its_api_types() {
    let offenders: Vec<String> = sources("agent/src")
        .into_iter()
        .filter(|(_, text)| {
            text.split("#[cfg(test)]")
                .next()
                .is_some_and(|code| code.contains("json!"))
        })
        .map(|(file, _)| file.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "json! outside the api types: {offenders:?}"
    );
}

#[test]
fn the_relay_knows_no_sdk() {
    let offenders = files_containing("relay", &["approvd_client", "qrcode"]);
    assert!(offenders.is_empty(), "the SDK in the relay: {offenders:?}");
    let manifest = std::fs::read_to_string(workspace().join("relay/Cargo.toml")).expect("manifest");
    for dependency in ["approvd-client", "qrcode"] {
        assert!(
            !manifest.contains(dependency),
            "relay/Cargo.toml depends on {dependency}"
        );
    }
}

#[test]
fn only_the_clock_reads_the_system_time() {
    let clock = workspace().join("relay/src/clock.rs");
    let offenders: Vec<String> = sources("relay/src")
        .into_iter()
        .filter(|(file, text)| *file != clock && text.contains("SystemTime::now"))
        .map(|(file, _)| file.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "SystemTime::now outside clock.rs: {offenders:?}"
    );
}

/// The modules of `approvd-proto` each module's code (not its tests, not its comments) uses.
fn proto_imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let bin = workspace().join("proto/src/bin");
    let used = regex::Regex::new(r"crate::([a-z_]+)").expect("regex");
    let mut graph = std::collections::BTreeMap::new();
    for (file, text) in sources("proto/src") {
        if file.starts_with(&bin) {
            continue;
        }
        let module = file
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let uses = used
            .captures_iter(&code)
            .map(|found| found[1].to_owned())
            .filter(|other| {
                *other != module && *other != "Error" && other.as_str() != "random_bytes"
            })
            .collect();
        graph.insert(module, uses);
    }
    graph
}

#[test]
fn the_protocol_modules_import_no_circle() {
    let graph = proto_imports();
    assert!(graph.len() >= 10, "{graph:?}");
    assert!(
        graph["limits"].is_empty(),
        "limits is the ground floor: {:?}",
        graph["limits"]
    );
    // Depth-first search for a back edge.
    fn visit<'g>(
        module: &'g str,
        graph: &'g std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<&'g str>,
        done: &mut std::collections::BTreeSet<&'g str>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = path.iter().position(|on| *on == module) {
            panic!("import circle: {} -> {module}", path[at..].join(" -> "));
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            if graph.contains_key(next.as_str()) {
                visit(next, graph, path, done);
            }
        }
        path.pop();
        done.insert(module);
    }
    let mut done = std::collections::BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_images_build_layer_copies_every_workspace_manifest() {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("members");
    let dockerfile = std::fs::read_to_string(workspace().join("Dockerfile")).expect("Dockerfile");
    let mut count = 0;
    for member in members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        count += 1;
        let copied = format!("COPY {member}/Cargo.toml");
        assert!(
            dockerfile.contains(&copied),
            "the Dockerfile's builder misses {copied}"
        );
    }
    assert!(count >= 9, "{members}");
}

#[test]
fn only_store_redis_spells_redis_keys() {
    let redis_dir = workspace().join("relay/src/store/redis");
    let offenders: Vec<String> = sources("relay/src")
        .into_iter()
        .filter(|(file, _)| !file.starts_with(&redis_dir))
        .filter(|(_, text)| {
            text.match_indices("\"approvd:").any(|(at, found)| {
                text[at + found.len()..]
                    .chars()
                    .next()
                    .is_some_and(|next| next.is_ascii_lowercase())
            })
        })
        .map(|(file, _)| file.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "Redis keys spelled in {offenders:?}");
}

#[test]
fn the_use_cases_know_no_http() {
    for place in ["relay/src/service", "agent/src/service.rs"] {
        let offenders = if place.ends_with(".rs") {
            let code = code_of(place);
            ["actix", "StatusCode", "HttpRequest", "HttpResponse"]
                .iter()
                .filter(|needle| code.contains(*needle))
                .map(|needle| format!("{place}: {needle}"))
                .collect()
        } else {
            files_containing(
                place,
                &["actix", "StatusCode", "HttpRequest", "HttpResponse"],
            )
        };
        assert!(
            offenders.is_empty(),
            "HTTP in the service layer: {offenders:?}"
        );
    }
}

#[test]
fn the_protocol_crate_does_no_io_and_reads_no_clock() {
    let bin = workspace().join("proto/src/bin");
    let offenders: Vec<String> = sources("proto/src")
        .into_iter()
        .filter(|(file, _)| !file.starts_with(&bin))
        .filter(|(_, text)| {
            ["std::fs", "std::net", "tokio", "SystemTime", "Instant::now"]
                .iter()
                .any(|needle| text.contains(needle))
        })
        .map(|(file, _)| file.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "I/O or a clock in {offenders:?}");
}

/// The Redis key rows (`| `approvd:…`) of a Markdown table, each line first stripped of `strip`.
fn key_rows(text: &str, strip: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix(strip))
        .filter(|row| row.starts_with("| `approvd:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn architecture_md_shows_the_redis_key_table_of_the_code() {
    let code = std::fs::read_to_string(workspace().join("relay/src/store/redis/mod.rs"))
        .expect("redis/mod.rs");
    let doc = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).expect("ARCHITECTURE");
    let in_code = key_rows(&code, "//! ");
    assert!(in_code.len() >= 10, "key table not found in the code");
    assert_eq!(
        key_rows(&doc, ""),
        in_code,
        "ARCHITECTURE.md's Redis key table differs from store/redis/mod.rs (whose keys a unit test checks)"
    );
}

#[test]
fn layers_import_only_downward() {
    // (folder or file under relay/src, modules of the relay crate it must not use)
    let rules: [(&str, &[&str]); 8] = [
        (
            "relay/src/store",
            &[
                "crate::config",
                "crate::service",
                "crate::http",
                "crate::server",
                "crate::push",
            ],
        ),
        (
            "relay/src/push",
            &[
                "crate::config",
                "crate::service",
                "crate::http",
                "crate::server",
            ],
        ),
        (
            "relay/src/push_handle.rs",
            &[
                "crate::config",
                "crate::service",
                "crate::http",
                "crate::server",
            ],
        ),
        (
            "relay/src/metrics.rs",
            &[
                "crate::config",
                "crate::service",
                "crate::http",
                "crate::server",
            ],
        ),
        (
            "relay/src/clock.rs",
            &[
                "crate::config",
                "crate::service",
                "crate::http",
                "crate::server",
            ],
        ),
        (
            "relay/src/config",
            &["crate::service", "crate::http", "crate::server"],
        ),
        ("relay/src/service", &["crate::http", "crate::server"]),
        ("relay/src/http", &["crate::server"]),
    ];
    let mut offenders = Vec::new();
    for (place, forbidden) in rules {
        let path = workspace().join(place);
        let files = if path.is_dir() {
            sources(place)
        } else {
            vec![(
                path.clone(),
                std::fs::read_to_string(&path).expect("source"),
            )]
        };
        for (file, text) in files {
            for module in forbidden {
                if text.contains(module) {
                    offenders.push(format!("{} uses {module}", file.display()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "upward imports: {offenders:?}");
}

/// The names of every test function in the workspace (`#[test]` or `#[tokio::test]`).
fn test_names() -> std::collections::BTreeSet<String> {
    let attribute = regex::Regex::new(
        r"#\[(?:tokio::)?test[^\]]*\]\s*(?:#\[[^\]]*\]\s*)*(?:async\s+)?fn\s+([a-z0-9_]+)",
    )
    .expect("regex");
    let mut names = std::collections::BTreeSet::new();
    for dir in [
        "proto",
        "client",
        "agent",
        "cli",
        "relay",
        "tests",
        "fuzz-targets",
        "examples",
        "deploy",
    ] {
        for (_, text) in sources(dir) {
            for found in attribute.captures_iter(&text) {
                names.insert(found[1].to_owned());
            }
        }
    }
    names
}

#[test]
fn security_md_names_only_tests_that_exist() {
    let text = std::fs::read_to_string(workspace().join("SECURITY.md")).expect("SECURITY.md");
    let threats = text
        .split("## Threats, mitigations and their tests")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the threats section");
    let names = test_names();
    let name = regex::Regex::new(r"`([a-z0-9_]+)`").expect("regex");
    let mut rows = 0;
    let mut missing = Vec::new();
    for row in threats.lines().filter(|line| line.starts_with("| ")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        if cells.len() != 3 || cells[0] == "Threat" {
            continue;
        }
        rows += 1;
        let named: Vec<&str> = name
            .captures_iter(cells[2])
            .map(|found| found.get(1).map_or("", |m| m.as_str()))
            .collect();
        assert!(!named.is_empty(), "a threat without a test: {row}");
        missing.extend(named.into_iter().filter(|test| !names.contains(*test)));
    }
    assert!(rows >= 30, "only {rows} threats found");
    assert!(
        missing.is_empty(),
        "SECURITY.md names tests that do not exist: {missing:?}"
    );
}
