// The data (`d`) of each gateway dispatch event, by event name (`t`), as discord-api-types
// declares it (gateway/v10, which builds on payloads/v10). generate.sh turns this interface into
// dispatch-data.schema.json. Add an event here (and regenerate) to have the fake's dispatches of
// it checked; events without an entry are not checked.
import type * as G from "discord-api-types/gateway/v10";

export interface DispatchData {
  READY: G.GatewayReadyDispatchData;
  GUILD_CREATE: G.GatewayGuildCreateDispatchData;
  GUILD_UPDATE: G.GatewayGuildUpdateDispatchData;
  GUILD_DELETE: G.GatewayGuildDeleteDispatchData;
  GUILD_ROLE_CREATE: G.GatewayGuildRoleCreateDispatchData;
  GUILD_ROLE_UPDATE: G.GatewayGuildRoleUpdateDispatchData;
  GUILD_ROLE_DELETE: G.GatewayGuildRoleDeleteDispatchData;
  GUILD_MEMBER_ADD: G.GatewayGuildMemberAddDispatchData;
  GUILD_MEMBER_UPDATE: G.GatewayGuildMemberUpdateDispatchData;
  GUILD_MEMBER_REMOVE: G.GatewayGuildMemberRemoveDispatchData;
  GUILD_MEMBERS_CHUNK: G.GatewayGuildMembersChunkDispatchData;
  CHANNEL_CREATE: G.GatewayChannelCreateDispatchData;
  CHANNEL_UPDATE: G.GatewayChannelUpdateDispatchData;
  CHANNEL_DELETE: G.GatewayChannelDeleteDispatchData;
  THREAD_CREATE: G.GatewayThreadCreateDispatchData;
  THREAD_UPDATE: G.GatewayThreadUpdateDispatchData;
  THREAD_DELETE: G.GatewayThreadDeleteDispatchData;
  THREAD_LIST_SYNC: G.GatewayThreadListSyncDispatchData;
  THREAD_MEMBER_UPDATE: G.GatewayThreadMemberUpdateDispatchData;
  THREAD_MEMBERS_UPDATE: G.GatewayThreadMembersUpdateDispatchData;
  INTERACTION_CREATE: G.GatewayInteractionCreateDispatchData;
  MESSAGE_CREATE: G.GatewayMessageCreateDispatchData;
  MESSAGE_UPDATE: G.GatewayMessageUpdateDispatchData;
  MESSAGE_DELETE: G.GatewayMessageDeleteDispatchData;
  MESSAGE_DELETE_BULK: G.GatewayMessageDeleteBulkDispatchData;
  MESSAGE_REACTION_ADD: G.GatewayMessageReactionAddDispatchData;
  MESSAGE_REACTION_REMOVE: G.GatewayMessageReactionRemoveDispatchData;
  TYPING_START: G.GatewayTypingStartDispatchData;
}
