//! SPEC section 8 (CORS): each company lists the origins its customer widget
//! may call from; the owner and admins change the list. Given/when/then.
#![allow(clippy::unwrap_used)]

mod support;

use backchannel_domain::ErrorCode::*;
use backchannel_domain::State;
use backchannel_domain::commands::Command;
use backchannel_domain::events::*;
use backchannel_domain::values::WidgetOrigins;
use support::*;

fn origins(list: &[&str]) -> WidgetOrigins {
    WidgetOrigins::parse(list).unwrap()
}

fn set(w: &World, list: &[&str]) -> Command {
    Command::SetWidgetOrigins {
        company: w.acme,
        origins: origins(list),
    }
}

fn changed(w: &World, list: &[&str]) -> Event {
    Event::WidgetOriginsChanged(WidgetOriginsChanged {
        company: w.acme,
        origins: origins(list),
    })
}

#[test]
fn owner_and_admin_set_widget_origins() {
    let w = World::new();
    for actor in [w.owner, w.admin] {
        given(w.setup())
            .when(staff(actor), set(&w, &["https://shop.example"]))
            .then_expect(vec![changed(&w, &["https://shop.example"])]);
    }
}

#[test]
fn supervisors_and_agents_cannot_set_widget_origins() {
    let w = World::new();
    for actor in [w.supervisor, w.a, w.h] {
        given(w.setup())
            .when(staff(actor), set(&w, &["https://shop.example"]))
            .then_error(Forbidden);
    }
}

#[test]
fn another_companys_admin_gets_not_found_for_widget_origins() {
    let w = World::new();
    given(w.setup())
        .when(staff(w.x), set(&w, &["https://shop.example"]))
        .then_error(NotFound);
}

#[test]
fn an_unchanged_list_records_nothing() {
    let w = World::new();
    let mut events = w.setup();
    events.push(changed(&w, &["https://a.example", "https://b.example"]));
    given(events)
        .when(
            staff(w.owner),
            set(&w, &["https://b.example", "HTTPS://A.example/"]),
        )
        .then_expect(vec![]);
    given(w.setup())
        .when(staff(w.owner), set(&w, &[]))
        .then_expect(vec![]);
}

#[test]
fn the_list_replaces_the_previous_one_and_an_empty_list_clears_it() {
    let w = World::new();
    let mut events = w.setup();
    events.push(changed(&w, &["https://a.example"]));
    given(events.clone())
        .when(staff(w.admin), set(&w, &[]))
        .then_expect(vec![changed(&w, &[])]);
    events.push(changed(&w, &["https://b.example"]));
    let state = State::from_events(&events);
    assert_eq!(
        state.companies[&w.acme].widget_origins,
        origins(&["https://b.example"])
    );
    assert!(state.some_company_allows_origin("https://b.example"));
    assert!(!state.some_company_allows_origin("https://a.example"));
}

#[test]
fn an_origin_listed_by_two_companies_stays_known_until_both_drop_it() {
    let w = World::new();
    let mut events = w.setup();
    let shared = "https://shared.example";
    events.push(changed(&w, &[shared]));
    events.push(Event::WidgetOriginsChanged(WidgetOriginsChanged {
        company: w.globex,
        origins: origins(&[shared]),
    }));
    events.push(changed(&w, &[]));
    let state = State::from_events(&events);
    assert!(state.some_company_allows_origin(shared));
    events.push(Event::WidgetOriginsChanged(WidgetOriginsChanged {
        company: w.globex,
        origins: origins(&[]),
    }));
    assert!(!State::from_events(&events).some_company_allows_origin(shared));
}
