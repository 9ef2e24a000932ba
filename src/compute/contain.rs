//! Containing a model server without a container engine.
//!
//! `modelreg contain [--no-network] [--cgroup DIR] [--rlimit-data N] -- PROGRAM…`
//! (a hidden subcommand of this binary) puts PROGRAM where a hosted custom
//! model would be:
//! - in a PID namespace of its own, as its PID 1. When PID 1 dies the kernel
//!   kills everything else in the namespace, and PID 1 dies with `contain`
//!   (`PR_SET_PDEATHSIG`), which dies with the modelreg thread that started
//!   it. So no model process outlives modelreg, even one killed with
//!   SIGKILL (gunicorn's worker would outlive a plain process group);
//! - with `--no-network`, in a network namespace with only a loopback
//!   interface: DataRobot's `networkEgressPolicy: NONE`. modelreg reaches
//!   the server from a thread that joins the namespace (`enter_netns`);
//! - with `--cgroup`, in a memory cgroup the parent created with the
//!   version's `maximumMemory` as its limit (`MemoryCgroup`); where no cgroup
//!   can be made, `--rlimit-data` caps the data segment instead.
//!
//! - with `--hide DIR`, in a mount namespace where DIR (the data directory:
//!   every team's files, the database, the keys) is an empty read-only
//!   tmpfs except the `--expose` paths bound back (the runtime read-only,
//!   the job's code read-only, its home writable); PROGRAM gets a /proc of
//!   its own namespace and no capabilities, so it can neither undo the
//!   mounts nor reach the host's processes. The rest of the host's files
//!   stay as they are: code that must not see them belongs in the docker
//!   runner (`serve --image-builder`).
//!
//! Without the privileges for namespaces (not root, and no unprivileged
//! user namespaces), it runs PROGRAM anyway and says so. Its first line on
//! stderr always reports what it could do: `modelreg-contain: pid
//! namespace yes; network none; memory cgroup`; the runner copies that line
//! into the job log, and waits for it before it joins the namespace.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// The prefix of the report line.
pub const REPORT_PREFIX: &str = "modelreg-contain:";

#[derive(clap::Args, Debug)]
pub struct ContainArgs {
    /// Run in a network namespace with only loopback (no egress).
    #[arg(long)]
    no_network: bool,
    /// Join this cgroup directory before anything else.
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// Cap the data segment at this many bytes (when no cgroup could be made).
    #[arg(long)]
    rlimit_data: Option<u64>,
    /// Cover this directory with an empty read-only tmpfs.
    #[arg(long)]
    hide: Option<PathBuf>,
    /// A path under --hide to bind back read-only. Repeatable.
    #[arg(long)]
    expose: Vec<PathBuf>,
    /// A path under --hide to bind back writable. Repeatable.
    #[arg(long)]
    expose_writable: Vec<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

static CHILD: AtomicI32 = AtomicI32::new(0);

/// The `contain` subcommand. Runs single-threaded until it forks.
pub fn main(args: ContainArgs) -> i32 {
    let mut report = Vec::new();
    let memory = match (&args.cgroup, args.rlimit_data) {
        (Some(dir), _) => match std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()) {
            Ok(()) => "memory cgroup".to_string(),
            Err(e) => format!("memory NOT limited (cannot join the cgroup: {e})"),
        },
        (None, Some(bytes)) => {
            let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
            // SAFETY: setrlimit reads the struct we pass.
            if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } == 0 {
                "memory rlimit-data (no cgroup available)".to_string()
            } else {
                format!("memory NOT limited (setrlimit: {})", std::io::Error::last_os_error())
            }
        }
        (None, None) => "memory unlimited".to_string(),
    };
    let namespaces = enter_namespaces(args.no_network);
    match &namespaces {
        Ok(()) => report.push("pid namespace yes".to_string()),
        Err(e) => report.push(format!("pid namespace NO ({e}): model processes may outlive a killed modelreg")),
    }
    // The files: only as root (a user namespace's root could undo them),
    // and only with namespaces.
    let mut private_files = false;
    if let (Some(dir), Ok(())) = (&args.hide, &namespaces) {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            match hide_directory(dir, &args.expose, &args.expose_writable) {
                Ok(()) => {
                    private_files = true;
                    report.push(format!("files: {} hidden but for the job's", dir.display()));
                }
                Err(e) => report.push(format!("files: {} NOT hidden ({e})", dir.display())),
            }
        } else {
            report.push("files: shared (not root)".to_string());
        }
    }
    report.push(match (args.no_network, &namespaces) {
        (false, _) => "network shared".to_string(),
        (true, Ok(())) => match loopback_up() {
            Ok(()) => "network none".to_string(),
            Err(e) => format!("network none (loopback down: {e})"),
        },
        (true, Err(_)) => "network NOT isolated: egress could not be blocked on this host".to_string(),
    });
    report.push(memory);
    eprintln!("{REPORT_PREFIX} {}", report.join("; "));

    let Ok(argv) = args.command.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<Vec<_>, _>>() else {
        eprintln!("{REPORT_PREFIX} an argument holds a NUL byte");
        return 127;
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    // SAFETY: single-threaded here; the child only calls async-signal-safe
    // functions (prctl, execvp, _exit) before it becomes PROGRAM.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        eprintln!("{REPORT_PREFIX} fork failed: {}", std::io::Error::last_os_error());
        return 127;
    }
    if pid == 0 {
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if private_files && !isolate_child() {
                libc::_exit(126);
            }
            libc::execvp(argv_ptrs[0], argv_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    CHILD.store(pid, Ordering::SeqCst);
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only calls kill(2), which is async-signal-safe.
        let _ = unsafe {
            signal_hook::low_level::register(signal, move || {
                libc::kill(CHILD.load(Ordering::SeqCst), signal);
            })
        };
    }
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status we pass.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return 127;
        }
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        eprintln!("{REPORT_PREFIX} {} was killed by signal {signal}", args.command[0]);
        return 128 + signal;
    }
    libc::WEXITSTATUS(status)
}

/// Covers `dir` with an empty read-only tmpfs in this (new) mount
/// namespace, binding `expose` back read-only and `writable` back as they
/// are. Every path must be under `dir`.
fn hide_directory(dir: &Path, expose: &[PathBuf], writable: &[PathBuf]) -> Result<(), String> {
    let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| format!("{} holds a NUL byte", p.display()));
    // SAFETY: mount(2) and open(2) with paths we own as C strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(format!("no mount namespace: {}", std::io::Error::last_os_error()));
        }
        // Nothing done here may reach the host's mount table.
        let root = c(Path::new("/"))?;
        if libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
            return Err(format!("cannot make mounts private: {}", std::io::Error::last_os_error()));
        }
        // Hold the exposed paths open: once the tmpfs covers `dir`, they
        // are reachable only through these descriptors.
        let mut binds = Vec::new();
        for (path, read_only) in expose.iter().map(|p| (p, true)).chain(writable.iter().map(|p| (p, false))) {
            let relative = path.strip_prefix(dir).map_err(|_| format!("{} is not under {}", path.display(), dir.display()))?;
            let fd = libc::open(c(path)?.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(format!("cannot open {}: {}", path.display(), std::io::Error::last_os_error()));
            }
            binds.push((fd, relative.to_path_buf(), path.is_dir(), read_only));
        }
        let target = c(dir)?;
        let tmpfs = CString::new("tmpfs").expect("no NUL");
        let options = CString::new("mode=0755,size=1m").expect("no NUL");
        if libc::mount(tmpfs.as_ptr(), target.as_ptr(), tmpfs.as_ptr(), libc::MS_NOSUID | libc::MS_NODEV, options.as_ptr().cast()) != 0 {
            return Err(format!("cannot cover {}: {}", dir.display(), std::io::Error::last_os_error()));
        }
        for (fd, relative, is_dir, read_only) in &binds {
            let mount_point = dir.join(relative);
            if *is_dir {
                std::fs::create_dir_all(&mount_point).map_err(|e| format!("{}: {e}", mount_point.display()))?;
            } else {
                if let Some(parent) = mount_point.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
                }
                std::fs::write(&mount_point, b"").map_err(|e| format!("{}: {e}", mount_point.display()))?;
            }
            let source = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
            let point = c(&mount_point)?;
            if libc::mount(source.as_ptr(), point.as_ptr(), std::ptr::null(), libc::MS_BIND | libc::MS_REC, std::ptr::null()) != 0 {
                return Err(format!("cannot bind {}: {}", mount_point.display(), std::io::Error::last_os_error()));
            }
            if *read_only
                && libc::mount(std::ptr::null(), point.as_ptr(), std::ptr::null(), libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY, std::ptr::null()) != 0
            {
                return Err(format!("cannot make {} read-only: {}", mount_point.display(), std::io::Error::last_os_error()));
            }
            libc::close(*fd);
        }
        if libc::mount(std::ptr::null(), target.as_ptr(), std::ptr::null(), libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV, std::ptr::null()) != 0 {
            return Err(format!("cannot make the cover read-only: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// In the forked child, PID 1 of its namespace: a /proc that shows only
/// the namespace, then no capabilities at all and no way to gain them, so
/// the mounts cannot be undone. False if any step failed.
unsafe fn isolate_child() -> bool {
    let proc_ = CString::new("/proc").expect("no NUL");
    let kind = CString::new("proc").expect("no NUL");
    if libc::mount(kind.as_ptr(), proc_.as_ptr(), kind.as_ptr(), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, std::ptr::null()) != 0 {
        return false;
    }
    for cap in 0..=63 {
        // EINVAL past the kernel's last capability: nothing to drop.
        libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
    }
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        return false;
    }
    // capset(2) with empty sets (version 3 header, two data words).
    let header: [u32; 2] = [0x2008_0522, 0];
    let data: [u32; 6] = [0; 6];
    libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) == 0
}

/// unshare(2) of a PID (and network) namespace; without the privilege for
/// that, inside a new user namespace, which an ordinary user may make where
/// the host allows it.
fn enter_namespaces(no_network: bool) -> Result<(), String> {
    let mut flags = libc::CLONE_NEWPID;
    if no_network {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(flags) } == 0 {
        return Ok(());
    }
    let privileged_error = std::io::Error::last_os_error();
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if unsafe { libc::unshare(flags | libc::CLONE_NEWUSER) } != 0 {
        return Err(format!("{privileged_error}; as a user namespace: {}", std::io::Error::last_os_error()));
    }
    let map = |file: &str, text: String| std::fs::write(file, text).map_err(|e| format!("{file}: {e}"));
    map("/proc/self/setgroups", "deny".into())?;
    map("/proc/self/uid_map", format!("0 {uid} 1"))?;
    map("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

/// A new network namespace starts with its loopback down.
fn loopback_up() -> Result<(), std::io::Error> {
    // SAFETY: a socket for the ioctl and the ifreq it reads and writes.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if sock < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let result = if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &ifr) < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        libc::close(sock);
        result
    }
}

/// Moves the calling thread into the network namespace of process `pid`.
/// Only for a thread that does nothing else (it cannot come back).
pub fn enter_netns(pid: u32) -> Result<(), String> {
    let path = format!("/proc/{pid}/ns/net");
    let file = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
    // SAFETY: setns on a namespace file we hold open.
    if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("cannot join the model's network namespace: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A memory cgroup for one model server, removed when dropped.
pub struct MemoryCgroup {
    dir: PathBuf,
    version: u8,
}

impl MemoryCgroup {
    /// Creates `modelreg/<name>` with `limit` bytes in the cgroup v2 tree,
    /// or else in cgroup v1's memory hierarchy. Err says why neither works.
    pub fn create(name: &str, limit: u64) -> Result<MemoryCgroup, String> {
        let v2 = Path::new("/sys/fs/cgroup");
        let v2_ok = std::fs::read_to_string(v2.join("cgroup.controllers")).is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let attempt = if v2_ok {
            Self::make(v2, name, 2, &[("memory.max", limit.to_string()), ("memory.swap.max", "0".into())])
        } else {
            let v1 = Path::new("/sys/fs/cgroup/memory");
            Self::make(v1, name, 1, &[("memory.limit_in_bytes", limit.to_string()), ("memory.memsw.limit_in_bytes", limit.to_string())])
        };
        attempt.map_err(|e| format!("no memory cgroup could be made ({e})"))
    }

    fn make(root: &Path, name: &str, version: u8, settings: &[(&str, String)]) -> Result<MemoryCgroup, String> {
        let parent = root.join("modelreg");
        std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        if version == 2 {
            // Children of `modelreg` get the memory controller.
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
        }
        let dir = parent.join(name);
        // Left by a run of the same job that modelreg was killed during
        // (its processes are gone, so it is empty and removable).
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cgroup = MemoryCgroup { dir, version };
        // The first setting is the limit and must hold; the swap limit is
        // best effort (absent without swap accounting).
        for (i, (file, value)) in settings.iter().enumerate() {
            let written = std::fs::write(cgroup.dir.join(file), value);
            if i == 0 {
                written.map_err(|e| format!("{file}: {e}"))?;
            }
        }
        Ok(cgroup)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the kernel's OOM killer killed a process in this cgroup.
    pub fn oom_killed(&self) -> bool {
        let file = if self.version == 2 { "memory.events" } else { "memory.oom_control" };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()))
            })
            .is_some_and(|n| n > 0)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Removal fails while the killed processes are still being reaped.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
