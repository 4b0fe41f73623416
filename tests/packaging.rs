//! The Dockerfile and config/kubernetes/, checked without Docker or a cluster (neither runs on
//! this project's machines): the Dockerfile is read, the files its runtime stage copies are laid
//! out in a temporary root exactly as its COPY lines say and the real binary serves from there
//! on the ConfigMap's config, and the manifests' ports, probes, paths and user are checked
//! against the Dockerfile and config/semrouter.yaml.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, chat, free_port, get_status, repo};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

/// One instruction of a Dockerfile: the keyword (upper case) and the rest of its line(s).
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// A build stage: its name (`AS name`) and instructions.
#[derive(Debug)]
struct Stage {
    name: String,
    from: String,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &str) -> Vec<&Instruction> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == keyword)
            .collect()
    }

    fn last(&self, keyword: &str) -> &Instruction {
        *self
            .all(keyword)
            .last()
            .unwrap_or_else(|| panic!("stage `{}` has no {keyword}", self.name))
    }
}

fn dockerfile() -> Vec<Stage> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("read Dockerfile");
    // join continuation lines, drop comments and blank lines
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            lines.push(std::mem::take(&mut current));
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in lines {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_uppercase(),
            args: args.trim().to_string(),
        };
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_string(),
                _ => format!("stage{}", stages.len()),
            };
            stages.push(Stage {
                name,
                from: words[0].to_string(),
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        } else {
            assert_eq!(
                instruction.keyword, "ARG",
                "only ARG may come before the first FROM: {line}"
            );
        }
    }
    stages
}

/// A JSON-array (exec form) instruction's words.
fn exec_form(instruction: &Instruction) -> Vec<String> {
    let value: Value = serde_json::from_str(&instruction.args).unwrap_or_else(|_| {
        panic!(
            "{} is not in exec form: {}",
            instruction.keyword, instruction.args
        )
    });
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

/// `COPY [--from=STAGE] SRC... DEST`: (from, sources, dest, workdir at that point).
fn copies(stage: &Stage) -> Vec<(Option<String>, Vec<String>, String, String)> {
    let mut workdir = "/".to_string();
    let mut out = Vec::new();
    for instruction in &stage.instructions {
        match instruction.keyword.as_str() {
            "WORKDIR" => workdir = instruction.args.clone(),
            "COPY" | "ADD" => {
                assert_eq!(instruction.keyword, "COPY", "use COPY, not ADD");
                let mut words: Vec<String> = instruction
                    .args
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                let mut from = None;
                words.retain(|w| match w.strip_prefix("--from=") {
                    Some(stage) => {
                        from = Some(stage.to_string());
                        false
                    }
                    None => !w.starts_with("--"),
                });
                let dest = words.pop().expect("COPY has a destination");
                assert!(
                    !words.is_empty(),
                    "COPY without a source: {}",
                    instruction.args
                );
                out.push((from, words, dest, workdir.clone()));
            }
            _ => {}
        }
    }
    out
}

fn yaml_docs(path: &str) -> Vec<Yaml> {
    let text =
        std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// The port of a `host:port` address.
fn port_of(addr: &str) -> i64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{addr}`"))
}

fn default_config() -> Yaml {
    yaml_docs("config/semrouter.yaml").remove(0)
}

/// Every Kubernetes object of config/kubernetes/ (the kustomization's resources, which must be
/// every other YAML file there).
fn manifests() -> Vec<Yaml> {
    let kustomization = yaml_docs("config/kubernetes/kustomization.yaml").remove(0);
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_vec()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo().join("config/kubernetes"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml must list every manifest in config/kubernetes/"
    );
    listed
        .iter()
        .flat_map(|f| yaml_docs(&format!("config/kubernetes/{f}")))
        .collect()
}

fn object<'a>(objects: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} `{name}` in config/kubernetes/"))
}

/// The config file the ConfigMap holds, and the path it is mounted at in the container.
fn configmap_config(objects: &[Yaml]) -> (String, String) {
    let deployment = object(objects, "Deployment", "semrouter");
    let pod = &deployment["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| !v["configMap"].is_badvalue())
        .expect("a ConfigMap volume");
    let map = object(
        objects,
        "ConfigMap",
        volume["configMap"]["name"].as_str().unwrap(),
    );
    let container = &pod["containers"][0];
    let mount = container["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the ConfigMap is mounted");
    let data = map["data"].as_hash().expect("ConfigMap data");
    assert_eq!(data.len(), 1, "one config file in the ConfigMap");
    let (key, text) = data.iter().next().unwrap();
    (
        text.as_str().unwrap().to_string(),
        format!(
            "{}/{}",
            mount["mountPath"].as_str().unwrap().trim_end_matches('/'),
            key.as_str().unwrap()
        ),
    )
}

/// Dotted paths at which two YAML trees differ.
fn differences(a: &Yaml, b: &Yaml, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Yaml::Hash(x), Yaml::Hash(y)) => {
            let keys: BTreeSet<String> = x
                .keys()
                .chain(y.keys())
                .map(|k| k.as_str().unwrap_or("?").to_string())
                .collect();
            for key in keys {
                let k = Yaml::String(key.clone());
                let (va, vb) = (
                    x.get(&k).unwrap_or(&Yaml::BadValue),
                    y.get(&k).unwrap_or(&Yaml::BadValue),
                );
                differences(
                    va,
                    vb,
                    &if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    },
                    out,
                );
            }
        }
        _ if a == b => {}
        _ => out.push(path.to_string()),
    }
}

#[test]
fn dockerfile_is_multi_stage_fetches_like_make_run_and_runs_as_a_non_root_user() {
    let stages = dockerfile();
    assert!(stages.len() >= 2, "a builder and a runtime stage");
    let builder = stages
        .iter()
        .find(|s| s.name == "builder")
        .expect("a stage named builder");
    assert!(
        builder.from.starts_with("rust:"),
        "the builder is a Rust image: {}",
        builder.from
    );
    let runs: Vec<&str> = builder.all("RUN").iter().map(|i| i.args.as_str()).collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("python3 onnx/fetch.py --role serve")),
        "the builder fetches the serve artefacts with onnx/fetch.py as `make run` does"
    );
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo build --release --locked")),
        "the builder builds the release binary from Cargo.lock"
    );
    let runtime = stages.last().unwrap();
    assert!(
        runtime.from.starts_with("debian:") && runtime.from.contains("slim"),
        "a slim Debian runtime: {}",
        runtime.from
    );
    let user = &runtime.last("USER").args;
    let uid = user.split(':').next().unwrap();
    assert!(
        uid != "0" && uid != "root",
        "the runtime runs as a non-root user, not `{user}`"
    );

    // the ports and probe agree with the default config
    let config = default_config();
    let http = port_of(config["server"]["http_addr"].as_str().unwrap());
    let grpc = port_of(config["extproc"]["addr"].as_str().unwrap());
    let exposed: BTreeSet<i64> = runtime
        .all("EXPOSE")
        .iter()
        .flat_map(|i| i.args.split_whitespace().map(|p| p.parse::<i64>().unwrap()))
        .collect();
    assert_eq!(
        exposed,
        BTreeSet::from([http, grpc]),
        "EXPOSE the HTTP and ext_proc ports"
    );
    let health = &runtime.last("HEALTHCHECK").args;
    assert!(
        health.contains(&format!("127.0.0.1:{http}/health")),
        "HEALTHCHECK on /health at the HTTP port: {health}"
    );

    // the files the runtime copies exist after `make setup` (and are the ones the default
    // config loads), and the build context carries what the builder copies
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for excluded in ["target/", "onnx/fetched"] {
        assert!(
            ignore.lines().any(|l| l.trim() == excluded),
            ".dockerignore keeps `{excluded}` out of the build context"
        );
    }
    let builder_workdir = builder.last("WORKDIR").args.clone();
    for (from, sources, _, _) in copies(builder) {
        assert!(from.is_none());
        for source in sources.iter().filter(|s| *s != ".") {
            assert!(
                repo().join(source).exists(),
                "the builder copies `{source}`, which the repository lacks"
            );
        }
    }
    let mut copied = BTreeSet::new();
    for (from, sources, dest, workdir) in copies(runtime) {
        assert_eq!(
            from.as_deref(),
            Some("builder"),
            "the runtime copies from the builder only"
        );
        for source in sources {
            let relative = source
                .strip_prefix(&format!("{}/", builder_workdir.trim_end_matches('/')))
                .unwrap_or_else(|| panic!("`{source}` is outside the builder's WORKDIR"));
            let path = if relative == "target/release/semrouter" {
                PathBuf::from(binary())
            } else {
                repo().join(relative)
            };
            assert!(
                path.exists(),
                "the runtime copies `{source}`, which is not there after `make setup`: {}",
                path.display()
            );
            let target = if dest.starts_with('/') {
                dest.clone()
            } else {
                format!("{}/{dest}", workdir.trim_end_matches('/'))
            };
            copied.insert((relative.trim_end_matches('/').to_string(), target));
        }
    }
    for key in [
        &config["runtime"]["onnxruntime_library"],
        &config["embedding"]["onnx"]["model"],
        &config["embedding"]["onnx"]["tokenizer"],
    ] {
        let file = key.as_str().unwrap();
        assert!(
            copied
                .iter()
                .any(|(source, _)| file.starts_with(source.as_str())),
            "the default config loads `{file}`, which the image does not copy"
        );
    }
}

/// The `dest` of each artefact in onnx/manifest.toml whose `role` is `role`. The manifest's
/// artefacts are flat tables of `key = "value"` lines, so a line reader is enough here.
fn manifest_dests(role: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(repo().join("onnx/manifest.toml")).expect("onnx/manifest.toml");
    let value = |line: &str, key: &str| {
        line.strip_prefix(key)
            .and_then(|rest| rest.trim_start().strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    let mut dests = Vec::new();
    for block in text.split("[[artefact]]").skip(1) {
        let (mut this_role, mut dest) = (None, None);
        for line in block.lines() {
            this_role = this_role.or_else(|| value(line, "role"));
            dest = dest.or_else(|| value(line, "dest"));
        }
        let this_role = this_role
            .unwrap_or_else(|| panic!("an artefact without a role in onnx/manifest.toml:{block}"));
        assert!(
            ["serve", "data", "test"].contains(&this_role.as_str()),
            "unknown role `{this_role}` in onnx/manifest.toml"
        );
        if this_role == role {
            dests.push(dest.expect("every artefact has a dest"));
        }
    }
    dests
}

/// `make run` fetches only the artefacts of role `serve` (`onnx/fetch.py --role serve`), and so
/// does the image's builder: every fetched file the default config loads, and every fetched file
/// the image copies, must come from one of them.
#[test]
fn the_serve_artefacts_hold_every_fetched_file_the_default_config_and_the_image_load() {
    let serve = manifest_dests("serve");
    assert!(
        !serve.is_empty(),
        "onnx/manifest.toml has no artefact of role serve"
    );
    let fetched_by_serve = |path: &str| {
        serve
            .iter()
            .any(|dest| path.starts_with(&format!("{}/", dest.trim_end_matches('/'))))
    };
    let config = std::fs::read_to_string(repo().join("config/semrouter.yaml")).unwrap();
    let mut loaded: Vec<String> = config
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with("onnx/fetched/"))
                .map(str::to_string)
        })
        .collect();
    assert!(
        loaded.len() >= 3,
        "the default config loads the runtime and the encoder from onnx/fetched/: {loaded:?}"
    );
    let stages = dockerfile();
    let builder_workdir = stages
        .iter()
        .find(|s| s.name == "builder")
        .unwrap()
        .last("WORKDIR")
        .args
        .clone();
    for (_, sources, _, _) in copies(stages.last().unwrap()) {
        for source in sources {
            let relative = source
                .trim_start_matches(&format!("{}/", builder_workdir.trim_end_matches('/')))
                .to_string();
            if relative.starts_with("onnx/fetched/") {
                loaded.push(relative);
            }
        }
    }
    for path in loaded {
        assert!(fetched_by_serve(&path), "`{path}` is loaded by the default config or copied into the image, but no artefact of role serve in onnx/manifest.toml fetches it (serve dests: {serve:?})");
    }
}

#[test]
fn kubernetes_manifests_agree_with_the_image_and_the_config() {
    let objects = manifests();
    let config = default_config();
    let http = port_of(config["server"]["http_addr"].as_str().unwrap());
    let grpc = port_of(config["extproc"]["addr"].as_str().unwrap());

    let deployment = object(&objects, "Deployment", "semrouter");
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"],
        "the selector matches the pod's labels"
    );
    let container = &pod["spec"]["containers"][0];
    let ports: Vec<(&str, i64)> = container["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![("http", http), ("grpc", grpc)],
        "container ports are server.http_addr's and extproc.addr's"
    );
    let port_number = |port: &Yaml| match port {
        Yaml::Integer(n) => *n,
        Yaml::String(name) => {
            ports
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("no container port `{name}`"))
                .1
        }
        other => panic!("bad port {other:?}"),
    };
    for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/health")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe} path");
        assert_eq!(port_number(&get["port"]), http, "{probe} on the HTTP port");
    }
    for resource in ["cpu", "memory"] {
        assert!(
            !container["resources"]["requests"][resource].is_badvalue(),
            "a {resource} request"
        );
    }
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(
        annotations["prometheus.io/port"]
            .as_str()
            .map(|p| p.parse::<i64>().unwrap()),
        Some(http)
    );
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));

    // the same user and the same command as the image
    let stages = dockerfile();
    let runtime = stages.last().unwrap();
    let uid: i64 = runtime
        .last("USER")
        .args
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("the image's USER is numeric");
    assert_eq!(
        pod["spec"]["securityContext"]["runAsUser"].as_i64(),
        Some(uid)
    );
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let args: Vec<String> = container["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        args,
        exec_form(runtime.last("CMD")),
        "the Deployment runs what the image's CMD says"
    );
    let (_, mounted_at) = configmap_config(&objects);
    let config_arg = args
        .iter()
        .position(|a| a == "--config")
        .map(|i| &args[i + 1])
        .expect("--config");
    assert_eq!(
        config_arg, &mounted_at,
        "the config the command loads is the ConfigMap's"
    );
    let image_config = copies(runtime)
        .into_iter()
        .find(|(_, s, _, _)| s.iter().any(|s| s.ends_with("config/semrouter.yaml")))
        .expect("the image carries the default config");
    assert_eq!(
        &image_config.2, config_arg,
        "the image's own config sits where the ConfigMap is mounted"
    );

    // the Service exposes both container ports, and the gateway's policy calls its gRPC port
    let service = object(&objects, "Service", "semrouter");
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    let service_ports: Vec<(&str, i64, i64)> = service["spec"]["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["port"].as_i64().unwrap(),
                port_number(&p["targetPort"]),
            )
        })
        .collect();
    assert_eq!(
        service_ports,
        vec![("http", http, http), ("grpc", grpc, grpc)]
    );
    let policy = yaml_docs("config/gateway/envoy-extension-policy.yaml").remove(0);
    let backend = &policy["spec"]["extProc"][0]["backendRefs"][0];
    assert_eq!(
        backend["name"].as_str(),
        Some("semrouter"),
        "the gateway's ext_proc backend is this Service"
    );
    assert_eq!(
        backend["port"].as_i64(),
        Some(grpc),
        "the gateway calls the Service's gRPC port"
    );
}

#[test]
fn configmap_config_is_the_default_with_json_logs_and_ext_proc_on() {
    let objects = manifests();
    let (text, _) = configmap_config(&objects);
    let mounted = YamlLoader::load_from_str(&text)
        .expect("the ConfigMap's config is YAML")
        .remove(0);
    let mut diff = Vec::new();
    differences(&default_config(), &mounted, "", &mut diff);
    assert_eq!(
        diff,
        vec![
            "extproc.enabled".to_string(),
            "server.log_format".to_string()
        ],
        "the ConfigMap's config differs from config/semrouter.yaml"
    );
    assert_eq!(mounted["server"]["log_format"].as_str(), Some("json"));
    assert_eq!(mounted["extproc"]["enabled"].as_bool(), Some(true));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("semrouter.yaml");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(binary())
        .current_dir(repo())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "semrouter check-config rejects the ConfigMap's config:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `semrouter serve` started in the image's layout; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        common::signal(self.0.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The image's runtime files, laid out in a temporary root as the Dockerfile's COPY lines say,
/// serve and route with the ConfigMap's config mounted where the Deployment mounts it.
#[tokio::test]
async fn the_image_layout_serves_on_the_configmap_config() {
    let stages = dockerfile();
    let builder_workdir = stages
        .iter()
        .find(|s| s.name == "builder")
        .unwrap()
        .last("WORKDIR")
        .args
        .clone();
    let runtime = stages.last().unwrap();
    let root = tempfile::tempdir().unwrap();
    let inside = |path: &str| root.path().join(path.trim_start_matches('/'));
    for (_, sources, dest, workdir) in copies(runtime) {
        let dest = if dest.starts_with('/') {
            dest
        } else {
            format!("{}/{dest}", workdir.trim_end_matches('/'))
        };
        let many = sources.len() > 1 || dest.ends_with('/');
        for source in sources {
            let relative = source
                .strip_prefix(&format!("{}/", builder_workdir.trim_end_matches('/')))
                .unwrap();
            if relative == "target/release/semrouter" {
                continue; // the binary under test runs in its place
            }
            let from = repo().join(relative);
            if from.is_dir() {
                copy_tree(&from, &inside(&dest));
            } else if many {
                std::fs::create_dir_all(inside(&dest)).unwrap();
                std::fs::copy(&from, inside(&dest).join(from.file_name().unwrap())).unwrap();
            } else {
                std::fs::create_dir_all(inside(&dest).parent().unwrap()).unwrap();
                std::fs::copy(&from, inside(&dest)).unwrap();
            }
        }
    }
    // the ConfigMap replaces what is at its mount path, as Kubernetes does
    let (config, mounted_at) = configmap_config(&manifests());
    std::fs::write(inside(&mounted_at), config).unwrap();

    let cmd = exec_form(runtime.last("CMD"));
    let workdir = runtime.last("WORKDIR").args.clone();
    let port = free_port();
    let stderr = root.path().join("stderr.log");
    let args: Vec<String> = cmd
        .iter()
        .map(|a| {
            if a.starts_with('/') {
                inside(a).display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let child = Command::new(binary())
        .current_dir(inside(&workdir))
        .args(&args)
        .arg("--http-addr")
        .arg(format!("127.0.0.1:{port}"))
        .env(
            "SEMROUTER__EXTPROC__ADDR",
            format!("127.0.0.1:{}", free_port()),
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut server = Running(child);
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "semrouter exited with {status} in the image layout:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        if get_status(&addr, "/ready") == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready after 120 s in the image layout:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get_status(&addr, "/health"), Some(200));
    let client = reqwest::Client::new();
    let decision: Value = client
        .post(format!("http://{addr}/v1/route"))
        .json(&chat("auto", "Solve 3x + 5 = 20 for x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(decision["category"]["name"], "math", "{decision}");
    assert_eq!(decision["reasoning"]["enabled"], true, "{decision}");
    drop(server);

    // log_format: json from the ConfigMap: every log line is one JSON object
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(log.lines().count() >= 2, "too little logged:\n{log}");
    for line in log.lines() {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"].is_object(),
            "{line}"
        );
    }
}
