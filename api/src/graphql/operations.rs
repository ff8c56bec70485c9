//! The operation names mutations execute under. A command's id is derived
//! from the actor, the operation and the `idempotencyKey` (`desk`), so each
//! name is fixed here once: renaming one would make a retry across a
//! deploy append again.
//!
//! Staff and customers share `sendMessage` and `closeConversation`: their
//! actors differ, so their command ids do too.

pub(crate) const ADD_GROUP_MEMBER: &str = "addGroupMember";
pub(crate) const ADD_GROUP_SUPERVISOR: &str = "addGroupSupervisor";
pub(crate) const ADD_STAFF: &str = "addStaff";
pub(crate) const ASSIGN_CONVERSATION: &str = "assignConversation";
pub(crate) const CHANGE_ROLE: &str = "changeRole";
pub(crate) const CLOSE_CONVERSATION: &str = "closeConversation";
pub(crate) const CREATE_GROUP: &str = "createGroup";
pub(crate) const DEACTIVATE_STAFF: &str = "deactivateStaff";
/// Loading the demo company (`backchannel demo`): its steps run under this
/// name with the keys `demo/1`, `demo/2`, ..., so loading it again appends
/// nothing.
pub(crate) const DEMO: &str = "demo";
pub(crate) const ERASE_CONVERSATION: &str = "eraseConversation";
pub(crate) const GRANT_PERMISSION: &str = "grantPermission";
/// Creating a company (`backchannel admin init`).
pub(crate) const INIT: &str = "init";
pub(crate) const INVITE_TO_ROOM: &str = "inviteToRoom";
pub(crate) const MARK_NOTIFICATIONS_READ: &str = "markNotificationsRead";
pub(crate) const OPEN_CONVERSATION: &str = "openConversation";
pub(crate) const REMOVE_GROUP_MEMBER: &str = "removeGroupMember";
pub(crate) const REMOVE_GROUP_SUPERVISOR: &str = "removeGroupSupervisor";
pub(crate) const RENAME_GROUP: &str = "renameGroup";
pub(crate) const REOPEN_CONVERSATION: &str = "reopenConversation";
pub(crate) const REVOKE_PERMISSION: &str = "revokePermission";
pub(crate) const SEND_MESSAGE: &str = "sendMessage";
pub(crate) const START_CONVERSATION: &str = "startConversation";
pub(crate) const SET_CONVERSATION_PRIVACY: &str = "setConversationPrivacy";
pub(crate) const SET_GROUP_ROUTING: &str = "setGroupRouting";
pub(crate) const SET_WIDGET_ORIGINS: &str = "setWidgetOrigins";
pub(crate) const UPDATE_PRIVACY_SETTINGS: &str = "updatePrivacySettings";
