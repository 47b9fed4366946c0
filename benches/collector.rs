//! One collector scan of a real wireguard-go interface with 10,000 peers: read over the UAPI socket,
//! turn into events, Avro-encode every one; the same with the probe planning the scan loop does
//! (which peers are due for a path probe; the probes themselves run beside the scan); and `wg show
//! <interface> dump` on the same interface for the ratio. Needs root: the interface lives in a
//! network namespace of its own.

use std::fmt::Write as _;
use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argus_collector::{InterfaceIdentity, ProbePlanner, ProbeSettings, Scanner, WireguardHost};
use argus_core::codec::encode_event;
use argus_core::{InterfaceName, PublicKey};
use criterion::{Criterion, Throughput, criterion_group};

const PEERS: u32 = 10_000;

/// A wireguard-go interface with `PEERS` peers in namespace `argus-bench-<pid>`; removed on drop.
struct BenchInterface {
    namespace: String,
    name: InterfaceName,
    daemon: Child,
}

fn run(command: &mut Command) {
    let output = command.output().expect("run command");
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}

impl BenchInterface {
    fn start() -> Self {
        let lab_deps = argus_testkit::repository_file("infra/scripts/install-lab-deps.sh");
        run(Command::new("bash").arg(lab_deps));
        let pid = std::process::id();
        let namespace = format!("argus-bench-{pid}");
        let name: InterfaceName = format!("agb{}", pid % 100_000).parse().expect("interface name");
        run(Command::new("ip").args(["netns", "add", &namespace]));
        let daemon = Command::new("ip")
            .args(["netns", "exec", &namespace, "wireguard-go", "-f", name.as_str()])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wireguard-go");
        let interface = Self { namespace, name, daemon };
        let socket = format!("/var/run/wireguard/{}.sock", interface.name);
        let started = Instant::now();
        while !std::path::Path::new(&socket).exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "wireguard-go opened no UAPI socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        let private_key = Command::new("wg").arg("genkey").output().expect("wg genkey").stdout;
        let mut config =
            format!("[Interface]\nPrivateKey = {}ListenPort = 51820\n", String::from_utf8_lossy(&private_key));
        for peer in 0..PEERS {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&peer.to_be_bytes());
            key[31] = 0x5a;
            let [_, a, b, c] = peer.to_be_bytes();
            let _ = write!(
                config,
                "[Peer]\nPublicKey = {}\nAllowedIPs = 100.{}.{b}.{c}/32, fd42:{a:x}:{b:x}::/64\nEndpoint = 198.18.{b}.{c}:51820\n",
                PublicKey::from_bytes(key),
                64 + a
            );
        }
        let directory = tempfile::tempdir().expect("tempdir");
        let file = directory.path().join("wg.conf");
        std::fs::write(&file, config).expect("write config");
        run(Command::new("wg").args(["setconf", interface.name.as_str()]).arg(&file));
        interface
    }
}

impl Drop for BenchInterface {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = Command::new("ip").args(["netns", "delete", &self.namespace]).output();
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.name));
    }
}

fn scan(criterion: &mut Criterion) {
    let interface = BenchInterface::start();
    let host = WireguardHost::default();
    let identity = InterfaceIdentity {
        org: "bench".parse().expect("org"),
        host: "gw-01".parse().expect("host"),
        clearance: Default::default(),
    };
    let mut scanner = Scanner::new("gw-01".parse().expect("collector"), 10_000);
    assert_eq!(host.read(&interface.name).expect("read").peers.len(), PEERS as usize);

    let mut group = criterion.benchmark_group("collector");
    group.throughput(Throughput::Elements(u64::from(PEERS)));
    group.sample_size(30);
    // the two scans differ by less than their spread over criterion's default five seconds
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("scan_and_encode_10000_peers", |bench| {
        let mut events = Vec::new();
        let mut bytes = Vec::with_capacity(4 << 20);
        bench.iter(|| {
            events.clear();
            bytes.clear();
            let snapshot = host.read(&interface.name).expect("read");
            scanner.scan(&snapshot, &identity, 1_780_272_000_000, &mut events);
            for event in &events {
                encode_event(event, &mut bytes);
            }
            black_box(bytes.len())
        });
    });
    let mut planner = ProbePlanner::default();
    let settings = ProbeSettings::default();
    group.bench_function("scan_encode_and_plan_probes_10000_peers", |bench| {
        let mut events = Vec::new();
        let mut bytes = Vec::with_capacity(4 << 20);
        let mut due = Vec::new();
        bench.iter(|| {
            events.clear();
            bytes.clear();
            due.clear();
            let snapshot = host.read(&interface.name).expect("read");
            scanner.scan(&snapshot, &identity, 1_780_272_000_000, &mut events);
            planner.plan(&snapshot, 1_780_272_000_000, &settings, &mut due);
            for event in &events {
                encode_event(event, &mut bytes);
            }
            black_box((bytes.len(), due.len()))
        });
    });
    // the planner's worst case: every peer of the snapshot quiet and due (the interface above has
    // peers that never handshook, which the planner passes over)
    let mut quiet = host.read(&interface.name).expect("read");
    for peer in &mut quiet.peers {
        peer.latest_handshake = Some(1_780_272_000_000 - 600_000);
    }
    group.bench_function("plan_probes_10000_quiet_peers", |bench| {
        let mut due = Vec::new();
        let mut now = 1_780_272_000_000;
        bench.iter(|| {
            due.clear();
            now += 60_000; // every peer due again
            planner.plan(&quiet, now, &settings, &mut due);
            black_box(due.len())
        });
    });
    group.bench_function("wg_show_dump_10000_peers", |bench| {
        bench.iter(|| {
            let output = Command::new("wg").args(["show", interface.name.as_str(), "dump"]).output().expect("wg");
            black_box(output.stdout.len())
        });
    });
    group.finish();
}

criterion_group!(benches, scan);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
