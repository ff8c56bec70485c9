//! The operation names mutations execute under. A command's id is derived
//! from the actor, the operation and the `idempotencyKey` (`desk`), so each
//! name is fixed here once: renaming one would make a retry across a
//! deploy append again.
//!
//! Staff and customers share `sendMessage` and `closeConversation`: their
//! actors differ, so their command ids do too.

pub const ADD_GROUP_MEMBER: &str = "addGroupMember";
pub const ADD_GROUP_SUPERVISOR: &str = "addGroupSupervisor";
pub const ADD_STAFF: &str = "addStaff";
pub const ASSIGN_CONVERSATION: &str = "assignConversation";
pub const CHANGE_ROLE: &str = "changeRole";
pub const CLOSE_CONVERSATION: &str = "closeConversation";
pub const CREATE_GROUP: &str = "createGroup";
pub const DEACTIVATE_STAFF: &str = "deactivateStaff";
/// Loading the demo company (`backchannel demo`): its steps run under this
/// name with the keys `demo/1`, `demo/2`, ..., so loading it again appends
/// nothing.
pub const DEMO: &str = "demo";
pub const ERASE_CONVERSATION: &str = "eraseConversation";
pub const GRANT_PERMISSION: &str = "grantPermission";
/// Creating a company (`backchannel admin init`).
pub const INIT: &str = "init";
pub const INVITE_TO_ROOM: &str = "inviteToRoom";
pub const MARK_NOTIFICATIONS_READ: &str = "markNotificationsRead";
pub const OPEN_CONVERSATION: &str = "openConversation";
pub const REMOVE_GROUP_MEMBER: &str = "removeGroupMember";
pub const REMOVE_GROUP_SUPERVISOR: &str = "removeGroupSupervisor";
pub const RENAME_GROUP: &str = "renameGroup";
pub const REOPEN_CONVERSATION: &str = "reopenConversation";
pub const REVOKE_PERMISSION: &str = "revokePermission";
pub const SEND_MESSAGE: &str = "sendMessage";
pub const START_CONVERSATION: &str = "startConversation";
pub const SET_CONVERSATION_PRIVACY: &str = "setConversationPrivacy";
pub const SET_GROUP_ROUTING: &str = "setGroupRouting";
pub const SET_WIDGET_ORIGINS: &str = "setWidgetOrigins";
pub const UPDATE_PRIVACY_SETTINGS: &str = "updatePrivacySettings";
