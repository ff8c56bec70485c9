#![allow(clippy::unwrap_used)]
//! SPEC section 8's `enquiryOverview(groupId)`: each column holds the given
//! group's conversations only, never those of the viewer's other groups.

mod support;

use backchannel_domain::commands::Command;
use backchannel_domain::ids::{ConversationId, GroupId, StaffId};
use backchannel_domain::model::{Actor, Channel};
use backchannel_projections::{Overview, ReadModels};
use support::Desk;

fn listed(overview: &Overview) -> Vec<ConversationId> {
    [&overview.queued, &overview.handling, &overview.closed]
        .iter()
        .flat_map(|col| col.items.iter().map(|s| s.id))
        .collect()
}

fn counted(overview: &Overview) -> usize {
    overview.queued.count + overview.handling.count + overview.closed.count
}

fn overview(models: &ReadModels, viewer: StaffId, group: GroupId) -> Overview {
    models.overview(viewer, group, 50).unwrap()
}

#[test]
fn the_overview_of_a_group_lists_only_that_group() {
    let mut desk = Desk::new();
    // A belongs to both groups, so sees both conversations in her list.
    let (co, owner, a, sales) = (desk.company, desk.owner, desk.a, desk.sales);
    desk.run(
        Actor::Staff(owner),
        Command::AddGroupMember {
            company: co,
            group: sales,
            staff: a,
        },
    );
    let in_support = desk.open(desk.support, Channel::Chat);
    let in_sales = desk.open(desk.sales, Channel::Chat);
    // One handling conversation in each group, so two columns are exercised.
    let handled_support = desk.open(desk.support, Channel::Chat);
    desk.assign(a, handled_support, a);
    let handled_sales = desk.open(desk.sales, Channel::Chat);
    desk.assign(a, handled_sales, a);

    for viewer in [desk.owner, desk.admin, desk.a] {
        let support = overview(&desk.models, viewer, desk.support);
        assert_eq!(support.group, desk.support);
        let mut ids = listed(&support);
        ids.sort();
        let mut want = vec![in_support, handled_support];
        want.sort();
        assert_eq!(ids, want, "support overview of {viewer:?}");
        assert_eq!(counted(&support), 2, "support counts of {viewer:?}");
        assert_eq!(support.queued.count, 1);
        assert_eq!(support.handling.count, 1);

        let sales = overview(&desk.models, viewer, desk.sales);
        let mut ids = listed(&sales);
        ids.sort();
        let mut want = vec![in_sales, handled_sales];
        want.sort();
        assert_eq!(ids, want, "sales overview of {viewer:?}");
        assert_eq!(counted(&sales), 2, "sales counts of {viewer:?}");
    }
}
