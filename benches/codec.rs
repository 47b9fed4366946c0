//! Avro single-object encode and decode of peer observations: `cargo bench -p argus-benches --bench codec`.

use std::hint::black_box;

use apache_avro::GenericSingleObjectReader;
use argus_core::codec::{SchemaId, decode_event, encode_event};
use argus_core::synthetic::{Fleet, FleetSpec};
use argus_core::{Event, PeerObservation};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const MESSAGES: usize = 10_000;

fn observations() -> Vec<Event> {
    let mut fleet = Fleet::new(FleetSpec {
        org: "bench".parse().expect("org"),
        hosts: 10,
        peers_per_host: 1_000,
        scan_interval_ms: 10_000,
        start: 1_780_272_000_000,
    });
    let mut events = Vec::new();
    fleet.next_scan(&mut events);
    events.retain(|event| matches!(event, Event::PeerObservation(PeerObservation { .. })));
    events.truncate(MESSAGES);
    events
}

fn codec(criterion: &mut Criterion) {
    let events = observations();
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|event| {
            let mut bytes = Vec::new();
            encode_event(event, &mut bytes);
            bytes
        })
        .collect();
    let mean_size = encoded.iter().map(Vec::len).sum::<usize>() / encoded.len();
    println!("mean PeerObservation message: {mean_size} bytes");

    let mut group = criterion.benchmark_group("avro PeerObservation");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("decode (messages/s)", |bench| {
        bench.iter(|| {
            for bytes in &encoded {
                black_box(decode_event(bytes).expect("valid message"));
            }
        });
    });
    let mut buffer = Vec::with_capacity(256);
    group.bench_function("encode (messages/s)", |bench| {
        bench.iter(|| {
            for event in &events {
                buffer.clear();
                encode_event(event, &mut buffer);
                black_box(&buffer);
            }
        });
    });
    let reader = GenericSingleObjectReader::builder()
        .schema(SchemaId::PeerObservationV1.schema().clone())
        .build()
        .expect("reader");
    group.bench_function("apache-avro generic decode to Value, for reference (messages/s)", |bench| {
        bench.iter(|| {
            for bytes in &encoded {
                black_box(reader.read_value(&mut &bytes[..]).expect("valid message"));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
