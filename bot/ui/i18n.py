"""Message catalogues (English and Simplified Chinese) and the app-command translator.

Every user-visible string goes through `t(key, locale, **params)`. A test checks that both
catalogues have the same keys and the same placeholders.
"""

from __future__ import annotations

import string
from typing import Any

import discord
from discord import app_commands

DEFAULT_LOCALE = "en-US"

EN: dict[str, str] = {
    # errors: refused before any API call
    "error.empty_prompt": "Please write what you want to see: the prompt is empty.",
    "error.prompt_too_long": "That prompt is {length} characters; the limit is {limit}. Please shorten it.",
    "error.edit_needs_image": "There is no image to edit yet. Attach an image, reply to a result, or use action `generate`.",
    "error.too_many_images": "Too many images: attach at most {limit}.",
    "error.queue_full": "You already have {limit} turns waiting. Please wait for one to finish (or cancel one).",
    "error.unknown_conversation": "This isn't an image conversation I know. Start one with `/imagine`.",
    "error.shutting_down": "The bot is restarting; please try again in a minute.",
    "error.limit_reached": "Limit reached: {limit_name} ({value}). It resets <t:{reset}:R>.",
    "error.invalid_options": "{problem_text}",
    "error.not_allowed": "{reason_text}",
    "error.bad_attachment": "{problem_text}",
    # invalid option details
    "problem.size_format": "Size `{value}` isn't valid: use `auto`, a preset, or WIDTHxHEIGHT such as `1536x864`.",
    "problem.size_multiple": "Size `{value}`: width and height must both be multiples of 16.",
    "problem.size_ratio": "Size `{value}`: the aspect ratio must be between 1:3 and 3:1.",
    "problem.size_max": "Size `{value}` is too large: at most 3840 px on a side and 3840x2160 in total.",
    "problem.size_min": "Size `{value}` is too small: use at least 512x512 pixels in total.",
    "problem.size_server_max": "This server allows images up to {value} pixels; choose a smaller size.",
    "problem.transparent_jpeg": "A transparent background needs format png or webp, not jpeg.",
    "problem.compression_range": "Compression must be between 0 and 100 (got {value}).",
    "problem.compression_png": "Compression only applies to jpeg and webp; choose one of those or drop compression.",
    "problem.partial_range": "Previews must be between 0 and 3 (got {value}).",
    "problem.quality_max": "This server allows quality up to `{value}`.",
    "problem.moderation_low": "This server doesn't allow moderation `low`.",
    "problem.choice": "`{value}` isn't a valid {option}.",
    "problem.not_image": "`{name}` isn't an image I can read (PNG, JPEG, WebP or GIF).",
    "problem.animated": "`{name}` is animated; please attach a still image.",
    "problem.too_large_pixels": "`{name}` has too many pixels; please attach a smaller image.",
    "problem.too_large_bytes": "`{name}` is larger than {limit_mb} MB; please attach a smaller file.",
    "problem.download": "I couldn't download `{name}`; please attach it again.",
    "problem.host": "`{name}` isn't a Discord attachment.",
    "problem.too_large": "The image is too large to upload here, even re-encoded.",
    # access
    "reason.blocked": "You can't use the image bot on this server.",
    "reason.channel": "Image generation isn't enabled in this channel.",
    "reason.role": "You need one of the allowed roles to generate images here.",
    "reason.starter_only": "Only the person who started this conversation (or a moderator) can refine it.",
    "reason.not_author": "Only the person who asked for this image (or a moderator) can do that.",
    "reason.manage_guild": "You need the Manage Server permission for that.",
    "reason.dm": "Image generation in direct messages isn't open to you. Use `/imagine` in a server where I'm installed.",
    "error.no_thread_here": "I can only hold a conversation in a thread I opened, and I can't open one from here. Run `/imagine` in a text channel.",
    # limits
    "limit.user_daily_images": "your images per day",
    "limit.guild_daily_spend": "this server's daily budget",
    "limit.guild_monthly_spend": "this server's monthly budget",
    # errors from the API
    "error.invalid_request": "The image service refused the request: {reason}",
    "error.auth": "The image service rejected the bot's credentials. The bot's owner has been told.",
    "error.rate_limited": "The image service is busy right now. Please try again in a minute.",
    "error.quota": "Image generation is unavailable right now (the service's quota is used up). The bot's owner has been told.",
    "error.server": "The image service had a problem. Please try again.",
    "error.timeout": "The image service took too long to answer. Please try again.",
    "error.connection": "The connection to the image service was lost. Please try again.",
    "error.moderation": "The image service's safety system blocked this request. Please rephrase it.",
    "error.no_output": "The image service returned nothing for this request. Please try again.",
    "error.cancelled": "Cancelled.",
    "error.upload_failed": "I couldn't upload the image here. {problem_text}",
    "error.missing_permissions": "I'm missing the **{permission}** permission here; a server admin can grant it to my role.",
    "error.thread_locked": "This thread is locked, so I can't post in it.",
    # progress
    "progress.queued": "⏳ Queued — position {position}.",
    "progress.queued_now": "⏳ Queued.",
    "progress.started": "🎨 Generating…",
    "progress.generating": "🎨 Generating… {elapsed}s",
    "progress.partial": "🎨 Generating… {elapsed}s · preview {index}",
    "progress.retrying": "🔁 The image service is busy; retrying in {seconds}s (attempt {attempt}).",
    "progress.failed": "⚠️ {message}",
    "progress.paused": "⏸️ The bot is restarting; this image will continue as soon as it is back.",
    # results
    "result.by": "by <@{user}>",
    "result.revised": "Revised prompt: {text}",
    "result.reencoded": "re-encoded to fit the upload limit",
    "result.rerooted": "chain rebuilt from the last image",
    "result.text_only": "(no image this time)",
    # conversation
    "thread.started": "🧵 Started a conversation: {thread}",
    "thread.hint": "Reply in this thread to refine the image. Reply to an earlier result to branch from it.",
    "thread.hint_no_content": "To refine: use `/refine`, @mention me with your instruction, or reply to a result.",
    "ack.queued": "Queued: **{prompt}**",
    "ack.done": "Done.",
    "ack.continue": "New replies in this thread will continue from this image.",
    "ack.deleted": "Deleted.",
    "ack.cancelled": "Cancelling…",
    "ack.already_over": "That turn has already finished.",
    # buttons and modal
    "button.reroll": "Reroll",
    "button.refine": "Refine",
    "button.continue": "Continue from here",
    "button.details": "Details",
    "button.delete": "Delete",
    "button.cancel": "Cancel",
    "modal.title": "Refine this image",
    "modal.label": "What should change?",
    "modal.placeholder": "e.g. make it night, add a red umbrella",
    # details
    "details.title": "Turn #{turn}",
    "details.prompt": "Prompt",
    "details.revised": "Revised prompt",
    "details.settings": "Settings",
    "details.parent": "Continues from",
    "details.none": "—",
    "details.ids": "Response / image ids",
    "details.usage": "Tokens (text in/out, image in/out)",
    "details.cost": "Estimated cost",
    "details.status": "Status",
    # usage
    "usage.title": "Image usage",
    "usage.you": "You: today {images_today} images (${cost_today}), this month {images_month} images (${cost_month}).",
    "usage.server": "Server: today {images_today} images (${cost_today}), this month {images_month} images (${cost_month}).",
    "usage.top": "Top this month: {entries}",
    "usage.limits": "Limits: {limits}",
    "usage.chart": "Last 30 days: images (bars) and spend (line)",
    # settings
    "settings.saved": "Settings saved.",
    "settings.current": "Current settings:\n{settings}",
    "settings.none": "(defaults)",
    # option values as users see them (footer, help, settings)
    "label.quality.auto": "auto quality",
    "label.quality.low": "low quality",
    "label.quality.medium": "medium quality",
    "label.quality.high": "high quality",
    # /describe
    "describe.title": "Prompt ideas from this image",
    "describe.use": "Imagine #{n}",
    "describe.hint": "Click a button to start a conversation with that prompt.",
    "problem.no_image": "That message has no image to describe.",
    # help (/help, and the welcome a server gets when the bot joins)
    "help.title": "How to use the image bot",
    "help.welcome": "👋 Thanks for adding me! Here is how I work; server managers can set limits with {settings}.",
    "help.commands": "**Commands**",
    "help.cmd.imagine": "{cmd} — describe an image; I draw it and open a thread for it.",
    "help.cmd.refine": "{cmd} — change the latest image in this thread (or simply reply in the thread).",
    "help.cmd.describe": "{cmd} — three prompt ideas from an image (also: Apps → Describe on any image).",
    "help.cmd.usage": "{cmd} — what you have used and what is left today.",
    "help.cmd.imagine-prefs": "{cmd} — your own defaults: size, quality, previews, pings.",
    "help.cmd.help": "{cmd} — this help.",
    "help.cmd.imagine-settings": "{cmd} — server settings (Manage Server).",
    "help.threads": "**Threads and branching**\nEvery image starts a thread. Reply in it to change the latest image; reply to an earlier image to branch from that one. Under each image: **Reroll** draws it again, **Refine** changes it, **Continue from here** makes it the one new replies build on.",
    "help.limits": "**This server's limits**",
    "help.no_limits": "No limits are set.",
    "help.limit.images": "{count} per person per day",
    "help.limit.daily_spend": "server budget ${amount} per day",
    "help.limit.monthly_spend": "server budget ${amount} per month",
    "help.limit.max_size": "largest size {size}",
    "help.limit.max_quality": "highest quality: {quality}",
    "help.limit.channels": "images only in {channels}",
    # start-up / generic
    "generic.unexpected": "Something went wrong on my side. Please try again.",
}

ZH: dict[str, str] = {
    "error.empty_prompt": "请写下你想看到的画面：提示词是空的。",
    "error.prompt_too_long": "提示词有 {length} 个字符，上限是 {limit}。请缩短一些。",
    "error.edit_needs_image": "还没有可编辑的图片。请附上一张图片、回复一个结果，或使用 `generate` 动作。",
    "error.too_many_images": "图片太多了：最多附上 {limit} 张。",
    "error.queue_full": "你已有 {limit} 个请求在排队。请等其中一个完成（或取消一个）。",
    "error.unknown_conversation": "这不是我知道的图片对话。用 `/imagine` 开始一个吧。",
    "error.shutting_down": "机器人正在重启，请一分钟后再试。",
    "error.limit_reached": "已达到上限：{limit_name}（{value}）。将在 <t:{reset}:R> 重置。",
    "error.invalid_options": "{problem_text}",
    "error.not_allowed": "{reason_text}",
    "error.bad_attachment": "{problem_text}",
    "problem.size_format": "尺寸 `{value}` 无效：请使用 `auto`、预设尺寸，或 宽x高（如 `1536x864`）。",
    "problem.size_multiple": "尺寸 `{value}`：宽和高都必须是 16 的倍数。",
    "problem.size_ratio": "尺寸 `{value}`：宽高比必须在 1:3 到 3:1 之间。",
    "problem.size_max": "尺寸 `{value}` 太大：单边最多 3840 像素，总像素不超过 3840x2160。",
    "problem.size_min": "尺寸 `{value}` 太小：总像素至少 512x512。",
    "problem.size_server_max": "本服务器允许的最大尺寸是 {value} 像素；请选择更小的尺寸。",
    "problem.transparent_jpeg": "透明背景需要 png 或 webp 格式，不能用 jpeg。",
    "problem.compression_range": "压缩率必须在 0 到 100 之间（收到 {value}）。",
    "problem.compression_png": "压缩率只适用于 jpeg 和 webp；请选择其一或去掉压缩率。",
    "problem.partial_range": "预览数量必须在 0 到 3 之间（收到 {value}）。",
    "problem.quality_max": "本服务器允许的最高质量是 `{value}`。",
    "problem.moderation_low": "本服务器不允许 `low` 审核级别。",
    "problem.choice": "`{value}` 不是有效的 {option}。",
    "problem.not_image": "`{name}` 不是我能读取的图片（PNG、JPEG、WebP 或 GIF）。",
    "problem.animated": "`{name}` 是动图；请附上一张静态图片。",
    "problem.too_large_pixels": "`{name}` 像素太多；请附上一张小一些的图片。",
    "problem.too_large_bytes": "`{name}` 超过 {limit_mb} MB；请附上一个小一些的文件。",
    "problem.download": "无法下载 `{name}`；请重新附上。",
    "problem.host": "`{name}` 不是 Discord 附件。",
    "problem.too_large": "图片太大，即使重新编码也无法在这里上传。",
    "reason.blocked": "你不能在本服务器使用图片机器人。",
    "reason.channel": "此频道未开启图片生成。",
    "reason.role": "你需要拥有允许的身份组之一才能在这里生成图片。",
    "reason.starter_only": "只有发起此对话的人（或管理员）可以继续修改。",
    "reason.not_author": "只有请求这张图片的人（或管理员）可以这样做。",
    "reason.manage_guild": "你需要“管理服务器”权限才能这样做。",
    "reason.dm": "你无法在私信中生成图片。请在安装了我的服务器中使用 `/imagine`。",
    "error.no_thread_here": "我只能在自己开启的子区中进行对话，而这里无法开启子区。请在文字频道中使用 `/imagine`。",
    "limit.user_daily_images": "你的每日图片数",
    "limit.guild_daily_spend": "本服务器的每日预算",
    "limit.guild_monthly_spend": "本服务器的每月预算",
    "error.invalid_request": "图片服务拒绝了请求：{reason}",
    "error.auth": "图片服务拒绝了机器人的凭据。已通知机器人的所有者。",
    "error.rate_limited": "图片服务现在很忙。请一分钟后再试。",
    "error.quota": "图片生成暂不可用（服务额度已用完）。已通知机器人的所有者。",
    "error.server": "图片服务出了问题。请再试一次。",
    "error.timeout": "图片服务响应超时。请再试一次。",
    "error.connection": "与图片服务的连接中断了。请再试一次。",
    "error.moderation": "图片服务的安全系统拦截了此请求。请换个说法。",
    "error.no_output": "图片服务没有返回任何内容。请再试一次。",
    "error.cancelled": "已取消。",
    "error.upload_failed": "无法在这里上传图片。{problem_text}",
    "error.missing_permissions": "我在这里缺少 **{permission}** 权限；服务器管理员可以为我的身份组授予。",
    "error.thread_locked": "此子区已锁定，我无法在其中发言。",
    "progress.queued": "⏳ 排队中 — 第 {position} 位。",
    "progress.queued_now": "⏳ 排队中。",
    "progress.started": "🎨 生成中…",
    "progress.generating": "🎨 生成中… {elapsed} 秒",
    "progress.partial": "🎨 生成中… {elapsed} 秒 · 预览 {index}",
    "progress.retrying": "🔁 图片服务繁忙；{seconds} 秒后重试（第 {attempt} 次）。",
    "progress.failed": "⚠️ {message}",
    "progress.paused": "⏸️ 机器人正在重启；恢复后这张图片会继续生成。",
    "result.by": "来自 <@{user}>",
    "result.revised": "改写后的提示词：{text}",
    "result.reencoded": "已重新编码以符合上传限制",
    "result.rerooted": "已从上一张图片重建对话链",
    "result.text_only": "（这次没有图片）",
    "thread.started": "🧵 已开始对话：{thread}",
    "thread.hint": "在此子区回复即可修改图片。回复之前的某个结果可从那里分支。",
    "thread.hint_no_content": "修改方式：使用 `/refine`、@我并写下指令，或回复某个结果。",
    "ack.queued": "已排队：**{prompt}**",
    "ack.done": "完成。",
    "ack.continue": "此子区中新的回复将从这张图片继续。",
    "ack.deleted": "已删除。",
    "ack.cancelled": "正在取消…",
    "ack.already_over": "该请求已经结束。",
    "button.reroll": "重新生成",
    "button.refine": "修改",
    "button.continue": "从这里继续",
    "button.details": "详情",
    "button.delete": "删除",
    "button.cancel": "取消",
    "modal.title": "修改这张图片",
    "modal.label": "需要改变什么？",
    "modal.placeholder": "例如：改成夜晚，加一把红伞",
    "details.title": "第 {turn} 轮",
    "details.prompt": "提示词",
    "details.revised": "改写后的提示词",
    "details.settings": "设置",
    "details.parent": "继续自",
    "details.none": "—",
    "details.ids": "响应 / 图片 ID",
    "details.usage": "令牌（文本 输入/输出，图片 输入/输出）",
    "details.cost": "估计费用",
    "details.status": "状态",
    "usage.title": "图片用量",
    "usage.you": "你：今天 {images_today} 张（${cost_today}），本月 {images_month} 张（${cost_month}）。",
    "usage.server": "服务器：今天 {images_today} 张（${cost_today}），本月 {images_month} 张（${cost_month}）。",
    "usage.top": "本月排行：{entries}",
    "usage.limits": "限制：{limits}",
    "usage.chart": "最近 30 天：图片数（柱）与花费（线）",
    "settings.saved": "设置已保存。",
    "settings.current": "当前设置：\n{settings}",
    "settings.none": "（默认）",
    "label.quality.auto": "自动质量",
    "label.quality.low": "低质量",
    "label.quality.medium": "中等质量",
    "label.quality.high": "高质量",
    "describe.title": "根据这张图片的提示词建议",
    "describe.use": "画第 {n} 条",
    "describe.hint": "点击按钮即可用那条提示词开始一个对话。",
    "problem.no_image": "那条消息里没有可描述的图片。",
    "help.title": "图片机器人使用说明",
    "help.welcome": "👋 感谢添加我！以下是使用方法；服务器管理员可以用 {settings} 设置限制。",
    "help.commands": "**命令**",
    "help.cmd.imagine": "{cmd} — 描述一张图片；我会画出来并为它开启一个子区。",
    "help.cmd.refine": "{cmd} — 修改此子区中最新的图片（也可以直接在子区里回复）。",
    "help.cmd.describe": "{cmd} — 根据一张图片给出三条提示词建议（也可在任意图片上使用 应用 → 描述）。",
    "help.cmd.usage": "{cmd} — 查看你已用的和今天还剩的额度。",
    "help.cmd.imagine-prefs": "{cmd} — 你自己的默认值：尺寸、质量、预览、提醒。",
    "help.cmd.help": "{cmd} — 本帮助。",
    "help.cmd.imagine-settings": "{cmd} — 服务器设置（需要“管理服务器”权限）。",
    "help.threads": "**子区与分支**\n每张图片都会开启一个子区。在子区里回复即可修改最新的图片；回复之前的某张图片即可从那张分支。每张图片下方：**重新生成** 再画一次，**修改** 做出改动，**从这里继续** 让之后的回复基于这张图片。",
    "help.limits": "**本服务器的限制**",
    "help.no_limits": "未设置任何限制。",
    "help.limit.images": "每人每天 {count} 张",
    "help.limit.daily_spend": "服务器每日预算 ${amount}",
    "help.limit.monthly_spend": "服务器每月预算 ${amount}",
    "help.limit.max_size": "最大尺寸 {size}",
    "help.limit.max_quality": "最高质量：{quality}",
    "help.limit.channels": "仅可在 {channels} 中生成图片",
    "generic.unexpected": "我这边出了点问题。请再试一次。",
}

CATALOGUES: dict[str, dict[str, str]] = {"en": EN, "zh": ZH}


SIMPLIFIED_CHINESE = frozenset({"zh", "zh-cn", "zh-sg", "zh-hans"})


def language(locale: str | None) -> str:
    """Simplified Chinese (`zh-CN`, `zh`) → "zh"; everything else → "en". Traditional Chinese
    (`zh-TW`, `zh-HK`) gets English until a Traditional catalogue exists: Simplified characters
    are not what those readers chose."""
    return "zh" if locale and locale.lower().replace("_", "-") in SIMPLIFIED_CHINESE else "en"


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def t(key: str, locale: str | None = None, **params: Any) -> str:
    """The message `key` in the user's language, with `params` filled in."""
    catalogue = CATALOGUES[language(locale)]
    template = catalogue.get(key) or EN.get(key) or key
    return string.Formatter().vformat(template, (), _Params(params))


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# ---------------------------------------------------------------- app-command translations
COMMAND_ZH: dict[str, str] = {
    # command names (lower case, no spaces: Discord's rules)
    "imagine": "画图",
    "refine": "修改",
    "usage": "用量",
    "imagine-settings": "画图设置",
    "help": "帮助",
    "describe": "描述",
    "Describe": "描述",
    "Three prompt ideas from an image, each one click from /imagine": "根据图片给出三条提示词建议，一键开始画图",
    "The image to describe": "要描述的图片",
    "How to use the image bot: commands, threads, this server's limits":
        "图片机器人使用说明：命令、子区、本服务器的限制",
    # descriptions
    "Create an image and start a conversation thread": "生成图片并开启一个对话子区",
    "Refine the latest image in this conversation": "修改此对话中最新的图片",
    "Show image usage and limits": "查看图片用量与限制",
    "Server settings for the image bot": "图片机器人的服务器设置",
    "Show the current settings": "查看当前设置",
    "Change generation defaults and limits": "修改生成默认值与限制",
    "Change who may use the bot and where": "修改谁可以在哪里使用机器人",
    # option names
    "prompt": "提示词",
    "action": "动作",
    "size": "尺寸",
    "quality": "质量",
    "background": "背景",
    "format": "格式",
    "compression": "压缩率",
    "moderation": "审核",
    "previews": "预览数",
    "image": "图片",
    "image2": "图片2",
    "image3": "图片3",
    # option descriptions
    "What to draw, or what to change": "要画什么，或要改变什么",
    "generate a new image, edit the current one, or let the model decide": "生成新图、编辑当前图，或由模型决定",
    "auto, a preset, or WIDTHxHEIGHT (multiples of 16)": "auto、预设，或 宽x高（16 的倍数）",
    "Rendering quality (higher costs more)": "渲染质量（越高越贵）",
    "Background (transparent needs png or webp)": "背景（透明需要 png 或 webp）",
    "Output file format": "输出文件格式",
    "0-100, jpeg and webp only": "0-100，仅限 jpeg 和 webp",
    "Content moderation level": "内容审核级别",
    "Live previews while generating (0-3)": "生成时的实时预览数（0-3）",
    "An image to start from or to use as a reference": "作为起点或参考的图片",
    "Another reference image": "另一张参考图片",
    # choices
    "let the model decide": "由模型决定",
    "generate a new image": "生成新图",
    "edit the current image": "编辑当前图片",
    "low (fast, cheap)": "低（快速、便宜）",
    "medium": "中",
    "high (slow, costly)": "高（慢、昂贵）",
    "auto": "自动",
    "opaque": "不透明",
    "transparent": "透明",
    "low (less strict)": "低（较宽松）",
    # /imagine-settings: subcommands, options, descriptions, choices
    "show": "查看",
    "limits": "限制",
    "access": "权限",
    "default_quality": "默认质量",
    "max_quality": "最高质量",
    "max_size": "最大尺寸",
    "default_size": "默认尺寸",
    "user_daily_images": "每人每日图片数",
    "daily_spend_usd": "每日预算美元",
    "monthly_spend_usd": "每月预算美元",
    "language": "语言",
    "mode": "操作",
    "channel": "频道",
    "role": "身份组",
    "blocked_user": "封禁成员",
    "exempt_role": "豁免身份组",
    "Quality used when a user doesn't choose": "成员未选择时使用的质量",
    "Highest quality members may choose": "成员可选择的最高质量",
    "Largest size members may ask for (WxH, compared by pixel count)": "成员可请求的最大尺寸（宽x高，按像素数比较）",
    "Size used when a user doesn't choose (auto, preset or WxH)":
        "成员未选择时使用的尺寸（auto、预设或 宽x高）",
    "Default number of live previews (0-3)": "默认实时预览数（0-3）",
    "Allow members to choose moderation=low": "是否允许成员选择 low 审核级别",
    "Images per member per day (0 = no server limit)": "每位成员每天的图片数（0 = 服务器不设限）",
    "Server spend cap per day in USD (0 = none)": "服务器每日花费上限，美元（0 = 不设限）",
    "Server spend cap per month in USD (0 = none)": "服务器每月花费上限，美元（0 = 不设限）",
    "Language for messages when a member's own locale isn't known": "无法得知成员语言时使用的消息语言",
    "Add to or remove from the list": "加入或移出列表",
    "Allow generation in this channel (none listed = everywhere)":
        "允许在此频道生成（未列出任何频道 = 所有频道）",
    "Allow this role (none listed = everyone)": "允许此身份组（未列出任何身份组 = 所有人）",
    "Block this member from generating": "禁止此成员生成图片",
    "This role is not subject to usage limits": "此身份组不受用量限制",
    "Who may refine a conversation": "谁可以修改对话",
    "member_dms": "成员私信",
    "Members may generate in DMs with the bot (if its operator allows DMs)":
        "成员可在与机器人的私信中生成图片（需运营者允许私信）",
    "anyone allowed": "任何人",
    "only the starter and moderators": "仅发起人和管理员",
    "add": "加入",
    "remove": "移除",
    "English": "English",
    "简体中文": "简体中文",
    "auto only": "仅自动",
    "allow low": "允许低级别",
}


class Translator(app_commands.Translator):
    """Simplified Chinese names, descriptions and choices for the app commands."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        if locale is discord.Locale.chinese:  # zh-CN only; zh-TW keeps the English names
            return COMMAND_ZH.get(string.message)
        return None
