//! modelreg behind a real nginx that terminates TLS (issue 10): the
//! official DataRobot client pages through 250 models and follows a status
//! redirect over https, which works only if every absolute URL modelreg
//! returns names the proxy's scheme and address (`--trusted-proxy`). The
//! nginx configuration is the one docs/operating.md recommends.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts nginx in the foreground as this user, with TLS on `port`
/// proxying to `upstream`, everything it writes under `dir`.
fn start_nginx(dir: &Path, port: u16, upstream: &str) -> Nginx {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    let site = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/nginx.conf")).unwrap();
    let site = site
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("/etc/ssl/modelreg/cert.pem", cert.to_str().unwrap())
        .replace("/etc/ssl/modelreg/key.pem", key.to_str().unwrap())
        .replace("server 127.0.0.1:8420;", &format!("server {upstream};"));
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         access_log {d}/access.log;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{site}\n}}\n"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx").arg("-c").arg(&conf_path).arg("-p").arg(dir).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start nginx");
    let nginx = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

#[test]
fn the_datarobot_client_pages_and_follows_redirects_through_a_tls_proxy() {
    if let Err(e) = Command::new("nginx").arg("-v").output() {
        common::skip_outside_ci("nginx (.ci/run installs it)", &e.to_string());
        return;
    }
    let Some(python) = common::client_python_or_skip() else { return };
    let server = common::Server::start_with(&["--trusted-proxy", "127.0.0.1"]);
    const MODELS: usize = 250;
    for n in 0..MODELS {
        let reply = server.post_json("/api/v2/customModels/", &json!({"name": format!("m{n}"), "targetType": "Unstructured"}));
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nginx = start_nginx(dir.path(), port, &server.addr);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_behind_proxy.py");
    let out = Command::new(python)
        .arg(script)
        .env("MODELREG_URL", format!("https://127.0.0.1:{port}"))
        .env("MODELREG_TOKEN", &server.key)
        .env("CA_BUNDLE", dir.path().join("cert.pem"))
        // requests also reads the bundle from here, for sessions the client opens before ssl_verify applies.
        .env("REQUESTS_CA_BUNDLE", dir.path().join("cert.pem"))
        .env("EXPECTED_MODELS", MODELS.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all calls succeeded"),
        "client behind nginx failed\n{stdout}\n{}\n--- nginx\n{}\n--- server\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default(),
        server.log.lock().unwrap()
    );
}
