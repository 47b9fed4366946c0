//! Properties of the fold over generated streams: duplicates are invisible, deltas add up.

mod common;

use argus_core::fold::Effect;
use argus_core::{Event, FoldState};
use common::*;
use proptest::prelude::*;

/// One step of a generated gateway history.
#[derive(Debug, Clone)]
enum Step {
    /// Peer `n` observed after `advance_s`; its handshake refreshes or not; it moves `bytes`.
    Observe {
        n: u8,
        advance_s: u16,
        handshake_fresh: bool,
        bytes: u32,
        reset: bool,
    },
    Heartbeat {
        advance_s: u16,
    },
    Remove {
        n: u8,
    },
    Tick {
        advance_s: u16,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1..5u8, 0..120u16, any::<bool>(), 0..1_000_000u32, prop::bool::weighted(0.05))
            .prop_map(|(n, advance_s, handshake_fresh, bytes, reset)| Step::Observe { n, advance_s, handshake_fresh, bytes, reset }),
        1 => (0..60u16).prop_map(|advance_s| Step::Heartbeat { advance_s }),
        1 => (1..5u8).prop_map(|n| Step::Remove { n }),
        1 => (0..200u16).prop_map(|advance_s| Step::Tick { advance_s }),
    ]
}

/// Something to feed the fold: an event, or a timer tick at a processing time.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "a short-lived test input list")]
enum Input {
    Event(Event),
    Tick(i64),
}

fn build(steps: &[Step]) -> Vec<Input> {
    let mut gateway = Gateway::new("gw-prop");
    let mut at = T0;
    let mut counters = [0u64; 5];
    let mut handshakes = [T0; 5];
    let mut inputs = Vec::new();
    for step in steps {
        match *step {
            Step::Observe { n, advance_s, handshake_fresh, bytes, reset } => {
                at += i64::from(advance_s) * SECOND;
                let counter = &mut counters[usize::from(n)];
                *counter = if reset { u64::from(bytes) } else { *counter + u64::from(bytes) };
                if handshake_fresh {
                    handshakes[usize::from(n)] = at;
                }
                inputs.push(Input::Event(gateway.observe(
                    at,
                    n,
                    Some(handshakes[usize::from(n)]),
                    *counter,
                    *counter / 3,
                )));
            }
            Step::Heartbeat { advance_s } => {
                at += i64::from(advance_s) * SECOND;
                inputs.push(Input::Event(gateway.heartbeat(at, 10_000)));
            }
            Step::Remove { n } => inputs.push(Input::Event(gateway.remove(at, n))),
            Step::Tick { advance_s } => inputs.push(Input::Tick(at + i64::from(advance_s) * SECOND)),
        }
    }
    inputs
}

fn run(inputs: &[Input]) -> (Vec<Effect>, FoldState) {
    let mut state = FoldState::default();
    let mut effects = Vec::new();
    for input in inputs {
        match input {
            Input::Event(event) => {
                state.apply(event, event.header().observed_at, &mut effects).expect("the fold accepts it")
            }
            Input::Tick(now) => state.tick(*now, &mut effects),
        }
    }
    (effects, state)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Re-delivering any earlier events anywhere later in the stream (at-least-once delivery)
    /// gives exactly the same effects and the same final state.
    #[test]
    fn duplicates_interleaved_change_nothing(
        steps in prop::collection::vec(step(), 1..120),
        duplicates in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..60),
    ) {
        let clean = build(&steps);
        // copies of event `from` re-delivered after position `to` (never before the original)
        let mut redelivered: Vec<Vec<Input>> = vec![Vec::new(); clean.len()];
        for (source, target) in duplicates {
            let from = source.index(clean.len());
            let to = from + target.index(clean.len() - from);
            if let Input::Event(event) = &clean[from] {
                redelivered[to].push(Input::Event(event.clone()));
            }
        }
        let noisy: Vec<Input> = clean
            .iter()
            .zip(redelivered)
            .flat_map(|(original, copies)| std::iter::once(original.clone()).chain(copies))
            .collect();
        let (clean_effects, clean_state) = run(&clean);
        let (noisy_effects, noisy_state) = run(&noisy);
        prop_assert_eq!(&clean_effects, &noisy_effects);
        let gateway = Gateway::new("gw-prop");
        let (org, host, interface) =
            (gateway.org.parse().expect("org"), gateway.host.parse().expect("host"), gateway.interface.parse().expect("iface"));
        for n in 1..5u8 {
            prop_assert_eq!(clean_state.peer(&org, &host, &interface, &key(n)), noisy_state.peer(&org, &host, &interface, &key(n)));
        }
    }

    /// Across any pattern of resets, the sum of the deltas is the traffic the counters show:
    /// each increase, plus the value a counter restarted to. No delta is ever negative.
    #[test]
    fn deltas_add_up_to_counter_progress(
        segments in prop::collection::vec(prop::collection::vec(0..5_000_000u64, 1..40), 1..8),
    ) {
        let mut gateway = Gateway::new("gw-prop");
        let mut state = FoldState::default();
        let mut at = T0;
        let mut counter = 0u64;
        let mut expected_rx = 0u64;
        let mut summed_rx = 0u64;
        let mut summed_tx = 0u64;
        let mut first_observation = true;
        for segment in &segments {
            for (step, increment) in segment.iter().enumerate() {
                if step == 0 && !first_observation {
                    // the interface restarted: the counter starts again from zero and is seen
                    // below its last value (a restart that overtakes the old value cannot be told
                    // apart from traffic, by any monitor)
                    counter = increment % counter.max(1);
                    expected_rx += counter;
                } else {
                    counter += increment;
                    if !first_observation {
                        expected_rx += increment;
                    }
                }
                first_observation = false;
                at += 10 * SECOND;
                let mut effects = Vec::new();
                state.apply(&gateway.observe(at, 1, Some(at), counter, counter * 2), at, &mut effects).expect("the fold accepts it");
                for effect in &effects {
                    if let Effect::PeerUpdated(record) = effect {
                        summed_rx += record.rx_delta_bytes;
                        summed_tx += record.tx_delta_bytes;
                    }
                }
            }
        }
        let record = gateway.peer(&state, 1);
        prop_assert_eq!(summed_rx, expected_rx);
        prop_assert_eq!(record.rx_total_bytes, expected_rx);
        prop_assert_eq!(record.tx_total_bytes, summed_tx);
        prop_assert_eq!(summed_tx, expected_rx * 2);
    }
}
