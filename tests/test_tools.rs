//! scripts/test-tools.sh, the recipe that installs the tests' system tools from Debian's archive,
//! against a scripted archive (stand-ins for apt-get, apt-cache, dpkg-query and id on PATH): it
//! takes the archive's newest version, falls back to the next with the packages pinned at that
//! version, and stops with one line naming the tool and the command to try. `make check-tools`
//! (part of `make test`) runs the same recipe against the real archive as it is.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SECURITY: &str = "156.0.8078.129-1~deb12u1";
const RELEASE: &str = "150.0.7871.100-1~deb12u1";

/// A scripted archive that offers chromium at SECURITY and RELEASE, each depending on
/// chromium-common at its own version. `FAIL` in the environment lists versions whose install
/// fails (as a held-broken-packages error does); every apt-get call is logged.
struct Archive {
    dir: tempfile::TempDir,
}

impl Archive {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let log = dir.path().join("apt.log");
        write_stub(
            &bin,
            "apt-cache",
            &format!(
                r#"case "$1" in
madison) [ "$2" = chromium ] || exit 0
  echo "  chromium | {SECURITY} | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"
  echo "  chromium | {RELEASE} | http://deb.debian.org/debian bookworm/main amd64 Packages" ;;
show) v="${{2#chromium=}}"
  echo "Package: chromium"
  echo "Depends: libc6 (>= 2.35), libgtk-3-0 | xdg-desktop-portal-backend, chromium-common (= $v)" ;;
esac"#
            ),
        );
        write_stub(
            &bin,
            "apt-get",
            &format!(
                r#"echo "$*" >> {log}
[ "$1" = update ] && exit 0
for version in $FAIL; do case "$*" in *"=$version"*) echo "E: Unable to correct problems, you have held broken packages." >&2; exit 100 ;; esac; done
case " $* " in *" -s "*) exit 0 ;; esac
touch "$(dirname "$0")/chromium"; chmod +x "$(dirname "$0")/chromium""#,
                log = log.display()
            ),
        );
        write_stub(&bin, "dpkg-query", "exit 1");
        write_stub(&bin, "id", r#"[ "$1" = -u ] && echo "${UID_IS:-0}""#);
        Archive { dir }
    }

    fn run(&self, args: &[&str], fail: &[&str], uid: u32) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .arg(repo().join("scripts/test-tools.sh"))
            .args(args)
            .env("PATH", path)
            .env("FAIL", fail.join(" "))
            .env("UID_IS", uid.to_string())
            .output()
            .unwrap()
    }

    fn installs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("apt.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("install"))
            .map(str::to_string)
            .collect()
    }
}

fn write_stub(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn installs_the_archives_newest_build_with_its_pinned_sibling() {
    let archive = Archive::new();
    let out = archive.run(&["install", "browser"], &[], 0);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("chromium {SECURITY} installed")),
        "{}",
        text(&out.stdout)
    );
    let installs = archive.installs();
    assert_eq!(installs.len(), 1, "{installs:?}");
    assert!(
        installs[0].contains(&format!("chromium={SECURITY} chromium-common={SECURITY}")),
        "{installs:?}"
    );
}

/// The failure that stopped every fresh set-up: the newest build does not install, and the
/// fallback must bring chromium-common at its own version with it.
#[test]
fn falls_back_to_the_next_version_with_its_sibling_at_that_version() {
    let archive = Archive::new();
    let out = archive.run(&["install", "browser"], &[SECURITY], 0);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("chromium {RELEASE} installed")),
        "{}",
        text(&out.stdout)
    );
    let installs = archive.installs();
    assert_eq!(installs.len(), 2, "{installs:?}");
    assert!(
        installs[1].contains(&format!("chromium={RELEASE} chromium-common={RELEASE}")),
        "{installs:?}"
    );
    assert!(
        !installs[1].contains("libc6"),
        "only packages pinned at the same version travel with it: {installs:?}"
    );
}

#[test]
fn stops_with_one_line_naming_the_tool_and_the_command_when_nothing_installs() {
    let archive = Archive::new();
    let out = archive.run(&["install", "browser"], &[SECURITY, RELEASE], 0);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(last, format!("error: test tool browser: no version of chromium installs from the archive (tried {SECURITY} {RELEASE}); try: apt-get install chromium"));
}

#[test]
fn without_root_says_so_and_installs_nothing() {
    let archive = Archive::new();
    let out = archive.run(&["install", "browser"], &[], 1000);
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr).trim(), "error: test tool browser (chromium) is not installed and apt-get needs root; try: sudo make browser");
    assert!(archive.installs().is_empty());
}

/// The check dry-runs every version the recipe may take, so a fallback that stopped installing
/// shows before the day it is needed, and fails only when none would install.
#[test]
fn check_dry_runs_every_version_and_fails_only_when_none_installs() {
    let archive = Archive::new();
    let out = archive.run(&["check", "browser"], &[RELEASE], 0);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "chromium={SECURITY} chromium-common={SECURITY} installs"
        )),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains(&format!(
            "chromium={RELEASE} chromium-common={RELEASE} would NOT install"
        )),
        "{}",
        text(&out.stderr)
    );
    let installs = archive.installs();
    assert!(
        installs.len() == 2 && installs.iter().all(|l| l.contains(" -s ")),
        "dry runs only: {installs:?}"
    );

    let out = archive.run(&["check", "browser"], &[SECURITY, RELEASE], 0);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("error: test tool browser: no version of chromium installs"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unknown_tool_is_refused() {
    let out = Archive::new().run(&["install", "firefox"], &[], 0);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown test tool 'firefox'"),
        "{}",
        text(&out.stderr)
    );
}
