//! Arbitrary bytes through the whole front half of the worker: the first byte picks the record
//! family, the rest is the Kafka payload, decoded with format detection (schema-registry frame, Avro
//! single object, JSON; no registry is configured) and, when it decodes, deserialized, validated and
//! encoded into COPY rows. The properties are asserted by `esurio_fuzz::run`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, payload)) = data.split_first() else {
        return;
    };
    let f = esurio_fuzz::family_index(first);
    esurio_fuzz::run(f, &esurio_fuzz::auto_decoders()[f], payload, false);
});
