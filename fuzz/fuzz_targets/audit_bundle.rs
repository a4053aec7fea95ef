//! An audit bundle given to `insights replay --verify --file`: reading never panics; it
//! verifies or says why not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = insights_event_store::bundle::verify(data, |_| {});
});
