//! The demo company's fixed ids (`fixtures/demo/demo.json`), what
//! `serve --demo` loads.

pub const COMPANY: &str = "01900000-0000-7000-8000-00000000c001";
/// BROADCAST.
pub const SUPPORT: &str = "01900000-0000-7000-8000-00000000b001";
/// ROUND_ROBIN, members Carol and Bob.
pub const SALES: &str = "01900000-0000-7000-8000-00000000b002";
/// Chat, Support, handled by Alice, private.
pub const CASEY: &str = "01900000-0000-7000-8000-00000000d001";
/// Social, Support, queued, private.
pub const DANA: &str = "01900000-0000-7000-8000-00000000d002";
/// Email, Sales (round robin).
pub const EVAN: &str = "01900000-0000-7000-8000-00000000d003";
/// Chat, Support, closed by Bob.
pub const FRANKIE: &str = "01900000-0000-7000-8000-00000000d004";
/// Call, Sales (round robin → Bob), opened public while the switch was off.
pub const GALE: &str = "01900000-0000-7000-8000-00000000d005";
/// Chat, Sales (round robin → Carol), private, closed by Carol.
pub const HANA: &str = "01900000-0000-7000-8000-00000000d006";
pub const OWNER: &str = "01900000-0000-7000-8000-000000005001";
pub const SUPERVISOR: &str = "01900000-0000-7000-8000-000000005003";
pub const ALICE: &str = "01900000-0000-7000-8000-000000005004";
pub const BOB: &str = "01900000-0000-7000-8000-000000005005";
pub const CAROL: &str = "01900000-0000-7000-8000-000000005006";
