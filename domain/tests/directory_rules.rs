//! SPEC sections 2 and 4 (company, staff, groups): given/when/then.

mod support;

use backchannel_domain::ErrorCode::*;
use backchannel_domain::commands::Command;
use backchannel_domain::events::*;
use backchannel_domain::ids::{CompanyId, GroupId, StaffId, WidgetKey};
use backchannel_domain::model::{Actor, Permission, Role, RoutingType};
use support::*;

fn settings(w: &World, enabled: bool, new_private: bool) -> Command {
    Command::UpdatePrivacySettings {
        company: w.acme,
        private_conversations_enabled: enabled,
        new_conversations_private: new_private,
    }
}

#[test]
fn owner_and_admin_change_privacy_settings() {
    let w = World::new();
    for actor in [w.owner, w.admin] {
        given(w.setup())
            .when(staff(actor), settings(&w, true, true))
            .then_expect(vec![w.privacy(true, true)]);
    }
}

#[test]
fn supervisors_and_agents_cannot_change_privacy_settings() {
    let w = World::new();
    for actor in [w.supervisor, w.a, w.h] {
        given(w.setup())
            .when(staff(actor), settings(&w, true, true))
            .then_error(Forbidden);
    }
}

#[test]
fn unchanged_privacy_settings_record_nothing() {
    let w = World::new();
    given(w.private_setup())
        .when(staff(w.owner), settings(&w, true, true))
        .then_expect(vec![]);
}

/// Either switch alone is a change: the company switch on with new
/// conversations public, then new conversations private with the switch on.
#[test]
fn changing_one_privacy_setting_alone_is_recorded() {
    let w = World::new();
    given(w.setup())
        .when(staff(w.owner), settings(&w, true, false))
        .then_expect(vec![w.privacy(true, false)]);
    let mut events = w.setup();
    events.push(w.privacy(true, false));
    given(events)
        .when(staff(w.owner), settings(&w, true, true))
        .then_expect(vec![w.privacy(true, true)]);
}

#[test]
fn another_companys_admin_gets_not_found() {
    let w = World::new();
    given(w.setup())
        .when(staff(w.x), settings(&w, true, true))
        .then_error(NotFound);
    given(w.setup())
        .when(
            staff(w.x),
            Command::DeactivateStaff {
                company: w.acme,
                staff: w.a,
            },
        )
        .then_error(NotFound);
}

#[test]
fn deactivated_or_unknown_actors_are_unauthenticated() {
    let w = World::new();
    for actor in [w.z, StaffId::new()] {
        given(w.setup())
            .when(staff(actor), settings(&w, true, true))
            .then_error(Unauthenticated);
    }
}

#[test]
fn only_the_server_creates_companies_with_their_owner() {
    let w = World::new();
    let (company, owner, key) = (CompanyId::new(), StaffId::new(), WidgetKey::new());
    let create = Command::CreateCompany {
        company,
        name: name("Initech"),
        widget_key: key,
        owner,
        owner_name: name("Bill"),
    };
    given(w.setup())
        .when(Actor::System, create.clone())
        .then_expect(vec![
            Event::CompanyCreated(CompanyCreated {
                company,
                name: name("Initech"),
                widget_key: key,
            }),
            staff_added(company, owner, "Bill", Role::Owner),
        ]);
    given(w.setup())
        .when(staff(w.owner), create)
        .then_error(Forbidden);
}

#[test]
fn creating_an_existing_company_is_a_validation_error() {
    let w = World::new();
    given(w.setup())
        .when(
            Actor::System,
            Command::CreateCompany {
                company: w.acme,
                name: name("Acme again"),
                widget_key: WidgetKey::new(),
                owner: StaffId::new(),
                owner_name: name("Someone"),
            },
        )
        .then_error(Validation);
}

fn add_staff(w: &World, role: Role) -> (StaffId, Command) {
    let id = StaffId::new();
    (
        id,
        Command::AddStaff {
            company: w.acme,
            staff: id,
            name: name("New Person"),
            role,
        },
    )
}

#[test]
fn admins_add_agents_and_supervisors() {
    let w = World::new();
    for role in [Role::Agent, Role::Supervisor] {
        let (id, command) = add_staff(&w, role);
        given(w.setup())
            .when(staff(w.admin), command)
            .then_expect(vec![staff_added(w.acme, id, "New Person", role)]);
    }
}

#[test]
fn only_the_owner_creates_admins() {
    let w = World::new();
    let (id, command) = add_staff(&w, Role::Admin);
    given(w.setup())
        .when(staff(w.owner), command.clone())
        .then_expect(vec![staff_added(w.acme, id, "New Person", Role::Admin)]);
    given(w.setup())
        .when(staff(w.admin), command)
        .then_error(Forbidden);
}

#[test]
fn there_is_exactly_one_owner() {
    let w = World::new();
    let (_, command) = add_staff(&w, Role::Owner);
    given(w.setup())
        .when(staff(w.owner), command)
        .then_error(Validation);
    given(w.setup())
        .when(
            staff(w.owner),
            Command::ChangeRole {
                company: w.acme,
                staff: w.admin,
                role: Role::Owner,
            },
        )
        .then_error(Validation);
    given(w.setup())
        .when(
            staff(w.admin),
            Command::ChangeRole {
                company: w.acme,
                staff: w.owner,
                role: Role::Agent,
            },
        )
        .then_error(Forbidden);
}

#[test]
fn agents_and_supervisors_cannot_manage_staff() {
    let w = World::new();
    for actor in [w.supervisor, w.a] {
        let (_, command) = add_staff(&w, Role::Agent);
        given(w.setup())
            .when(staff(actor), command)
            .then_error(Forbidden);
    }
}

#[test]
fn reusing_a_staff_id_is_a_validation_error() {
    let w = World::new();
    given(w.setup())
        .when(
            staff(w.owner),
            Command::AddStaff {
                company: w.acme,
                staff: w.a,
                name: name("Ann again"),
                role: Role::Agent,
            },
        )
        .then_error(Validation);
}

#[test]
fn only_the_owner_promotes_or_demotes_admins() {
    let w = World::new();
    let demote = Command::ChangeRole {
        company: w.acme,
        staff: w.admin,
        role: Role::Agent,
    };
    let promote = Command::ChangeRole {
        company: w.acme,
        staff: w.a,
        role: Role::Admin,
    };
    given(w.setup())
        .when(staff(w.admin), demote.clone())
        .then_error(Forbidden);
    given(w.setup())
        .when(staff(w.admin), promote.clone())
        .then_error(Forbidden);
    given(w.setup())
        .when(staff(w.owner), demote)
        .then_expect(vec![Event::StaffRoleChanged(StaffRoleChanged {
            company: w.acme,
            staff: w.admin,
            role: Role::Agent,
        })]);
    given(w.setup())
        .when(staff(w.owner), promote)
        .then_expect(vec![Event::StaffRoleChanged(StaffRoleChanged {
            company: w.acme,
            staff: w.a,
            role: Role::Admin,
        })]);
}

#[test]
fn admins_change_roles_between_agent_and_supervisor() {
    let w = World::new();
    given(w.setup())
        .when(
            staff(w.admin),
            Command::ChangeRole {
                company: w.acme,
                staff: w.a,
                role: Role::Supervisor,
            },
        )
        .then_expect(vec![Event::StaffRoleChanged(StaffRoleChanged {
            company: w.acme,
            staff: w.a,
            role: Role::Supervisor,
        })]);
}

#[test]
fn the_owner_cannot_be_deactivated() {
    let w = World::new();
    for actor in [w.owner, w.admin] {
        given(w.setup())
            .when(
                staff(actor),
                Command::DeactivateStaff {
                    company: w.acme,
                    staff: w.owner,
                },
            )
            .then_error(Forbidden);
    }
}

#[test]
fn only_the_owner_deactivates_admins() {
    let w = World::new();
    let command = Command::DeactivateStaff {
        company: w.acme,
        staff: w.admin,
    };
    given(w.setup())
        .when(staff(w.admin), command.clone())
        .then_error(Forbidden);
    given(w.setup())
        .when(staff(w.owner), command)
        .then_expect(vec![Event::StaffDeactivated(StaffDeactivated {
            company: w.acme,
            staff: w.admin,
        })]);
}

#[test]
fn admins_deactivate_agents_once() {
    let w = World::new();
    let command = Command::DeactivateStaff {
        company: w.acme,
        staff: w.a,
    };
    given(w.setup())
        .when(staff(w.admin), command.clone())
        .then_expect(vec![Event::StaffDeactivated(StaffDeactivated {
            company: w.acme,
            staff: w.a,
        })]);
    given(w.setup())
        .when(
            staff(w.admin),
            Command::DeactivateStaff {
                company: w.acme,
                staff: w.z,
            },
        )
        .then_expect(vec![]);
}

#[test]
fn admins_grant_and_revoke_enquiry_history() {
    let w = World::new();
    let grant = Command::GrantPermission {
        company: w.acme,
        staff: w.a,
        permission: Permission::EnquiryHistory,
    };
    given(w.setup())
        .when(staff(w.admin), grant.clone())
        .then_expect(vec![Event::PermissionGranted(PermissionGranted {
            company: w.acme,
            staff: w.a,
            permission: Permission::EnquiryHistory,
        })]);
    given(w.setup())
        .when(staff(w.supervisor), grant)
        .then_error(Forbidden);
    given(w.setup())
        .when(
            staff(w.owner),
            Command::RevokePermission {
                company: w.acme,
                staff: w.h,
                permission: Permission::EnquiryHistory,
            },
        )
        .then_expect(vec![Event::PermissionRevoked(PermissionRevoked {
            company: w.acme,
            staff: w.h,
            permission: Permission::EnquiryHistory,
        })]);
}

#[test]
fn staff_of_another_company_are_not_found_as_targets() {
    let w = World::new();
    given(w.setup())
        .when(
            staff(w.admin),
            Command::GrantPermission {
                company: w.acme,
                staff: w.x,
                permission: Permission::EnquiryHistory,
            },
        )
        .then_error(NotFound);
    given(w.setup())
        .when(
            staff(w.admin),
            Command::AddGroupMember {
                company: w.acme,
                group: w.globex_group,
                staff: w.a,
            },
        )
        .then_error(NotFound);
}

#[test]
fn owner_and_admin_manage_groups() {
    let w = World::new();
    let group = GroupId::new();
    given(w.setup())
        .when(
            staff(w.admin),
            Command::CreateGroup {
                company: w.acme,
                group,
                name: name("Billing"),
                routing: RoutingType::RoundRobin,
            },
        )
        .then_expect(vec![group_created(
            w.acme,
            group,
            "Billing",
            RoutingType::RoundRobin,
        )]);
    given(w.setup())
        .when(
            staff(w.owner),
            Command::RenameGroup {
                company: w.acme,
                group: w.support,
                name: name("Care"),
            },
        )
        .then_expect(vec![Event::GroupRenamed(GroupRenamed {
            company: w.acme,
            group: w.support,
            name: name("Care"),
        })]);
    given(w.setup())
        .when(
            staff(w.admin),
            Command::SetGroupRouting {
                company: w.acme,
                group: w.support,
                routing: RoutingType::RoundRobin,
            },
        )
        .then_expect(vec![Event::GroupRoutingChanged(GroupRoutingChanged {
            company: w.acme,
            group: w.support,
            routing: RoutingType::RoundRobin,
        })]);
    given(w.setup())
        .when(
            staff(w.admin),
            Command::AddGroupMember {
                company: w.acme,
                group: w.sales,
                staff: w.a,
            },
        )
        .then_expect(vec![Event::GroupMemberAdded(gs(w.acme, w.sales, w.a))]);
    given(w.setup())
        .when(
            staff(w.admin),
            Command::RemoveGroupMember {
                company: w.acme,
                group: w.support,
                staff: w.a,
            },
        )
        .then_expect(vec![Event::GroupMemberRemoved(gs(w.acme, w.support, w.a))]);
}

#[test]
fn supervisors_and_agents_cannot_manage_groups() {
    let w = World::new();
    for actor in [w.supervisor, w.a] {
        given(w.setup())
            .when(
                staff(actor),
                Command::AddGroupMember {
                    company: w.acme,
                    group: w.support,
                    staff: w.d,
                },
            )
            .then_error(Forbidden);
    }
}

#[test]
fn group_supervisors_must_hold_the_supervisor_role() {
    let w = World::new();
    given(w.setup())
        .when(
            staff(w.admin),
            Command::AddGroupSupervisor {
                company: w.acme,
                group: w.sales,
                staff: w.a,
            },
        )
        .then_error(Validation);
    given(w.setup())
        .when(
            staff(w.admin),
            Command::AddGroupSupervisor {
                company: w.acme,
                group: w.sales,
                staff: w.supervisor,
            },
        )
        .then_expect(vec![Event::GroupSupervisorAdded(gs(
            w.acme,
            w.sales,
            w.supervisor,
        ))]);
    given(w.setup())
        .when(
            staff(w.admin),
            Command::RemoveGroupSupervisor {
                company: w.acme,
                group: w.support,
                staff: w.supervisor,
            },
        )
        .then_expect(vec![Event::GroupSupervisorRemoved(gs(
            w.acme,
            w.support,
            w.supervisor,
        ))]);
}

#[test]
fn deactivated_staff_cannot_join_groups() {
    let w = World::new();
    given(w.setup())
        .when(
            staff(w.admin),
            Command::AddGroupMember {
                company: w.acme,
                group: w.sales,
                staff: w.z,
            },
        )
        .then_error(Validation);
}

#[test]
fn adding_an_existing_member_records_nothing() {
    let w = World::new();
    given(w.setup())
        .when(
            staff(w.admin),
            Command::AddGroupMember {
                company: w.acme,
                group: w.support,
                staff: w.a,
            },
        )
        .then_expect(vec![]);
}

#[test]
fn owners_and_admins_issue_tokens_but_only_the_owner_for_admins() {
    use backchannel_domain::may_issue_staff_token;
    let w = World::new();
    let state = given(w.setup()).state();
    let code =
        |actor, target| may_issue_staff_token(&state, staff(actor), target).map_err(|e| e.code());
    assert_eq!(code(w.owner, w.admin), Ok(()));
    assert_eq!(code(w.owner, w.a), Ok(()));
    assert_eq!(code(w.admin, w.a), Ok(()));
    assert_eq!(code(w.admin, w.supervisor), Ok(()));
    assert_eq!(code(w.admin, w.admin), Ok(()));
    assert_eq!(code(w.admin, w.owner), Err(Forbidden));
    assert_eq!(code(w.supervisor, w.a), Err(Forbidden));
    assert_eq!(code(w.a, w.a), Err(Forbidden));
    assert_eq!(code(w.admin, w.z), Err(Validation));
    assert_eq!(code(w.admin, w.x), Err(NotFound));
    assert_eq!(code(w.x, w.a), Err(NotFound));
    assert_eq!(code(w.z, w.a), Err(Unauthenticated));
}
