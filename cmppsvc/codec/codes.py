# -*- test-case-name: tests.test_codec -*-
"""Status and result codes with their meanings in English and Chinese (reference 6).

Codes 0-99 belong to CMPP and 100-199 to vendors, so any value may arrive: an unknown
one is "other error (code N)", never an exception.
"""

from __future__ import annotations

from typing import NamedTuple


class Meaning(NamedTuple):
    """A code with its English and Chinese meaning; ``str()`` gives the English."""

    code: int | str
    english: str
    chinese: str

    def __str__(self) -> str:
        return self.english

    @property
    def success(self) -> bool:
        """Whether the code means success (0, or the report Stat DELIVRD)."""
        return self.code in (0, "DELIVRD")


def _other(code: int | str) -> Meaning:
    return Meaning(code, f"other error (code {code})", f"其他错误（代码 {code}）")


CONNECT_STATUS = {
    0: ("success", "正确"),
    1: ("message structure error", "消息结构错"),
    2: ("illegal source address", "非法源地址"),
    3: ("authentication error", "认证错"),
    4: ("version too high", "版本太高"),
}

_COMMON_RESULT = {
    0: ("success", "正确"),
    1: ("message structure error", "消息结构错"),
    2: ("command word error", "命令字错"),
    3: ("duplicate message sequence", "消息序号重复"),
    4: ("message length error", "消息长度错"),
    5: ("fee code error", "资费代码错"),
    6: ("exceeds maximum message length", "超过最大信息长"),
    7: ("service code error", "业务代码错"),
    8: ("flow control error", "流量控制错"),
}

SUBMIT_RESULT = dict(_COMMON_RESULT)
SUBMIT_RESULT.update(
    {
        9: (
            "this gateway does not serve the charged number",
            "本网关不负责服务此计费号码",
        ),
        10: ("Src_Id error", "Src_Id错误"),
        11: ("Msg_src error", "Msg_src错误"),
        12: ("Fee_terminal_Id error", "Fee_terminal_Id错误"),
        13: ("Dest_terminal_Id error", "Dest_terminal_Id错误"),
    }
)

DELIVER_RESULT = dict(_COMMON_RESULT)

FWD_RESULT = dict(_COMMON_RESULT)
FWD_RESULT[9] = ("forward decision error (no forward privilege)", "前转判断错")

REPORT_STAT = {
    "DELIVRD": ("delivered", "消息已送达用户"),
    "EXPIRED": ("validity period expired", "消息超过有效期"),
    "DELETED": ("deleted", "消息已被删除"),
    "UNDELIV": ("undeliverable", "消息无法送达"),
    "ACCEPTD": ("accepted (intermediate state)", "消息已被接受（中间状态）"),
    "UNKNOWN": ("unknown state", "无效或未知状态"),
    "REJECTD": ("rejected", "消息被拒绝"),
}

REPORT_PREFIX = {
    "MA": ("SMSC gave no response", "SMSC不返回响应消息"),
    "MB": ("SMSC returned an error", "SMSC返回错误响应消息"),
    "MC": ("no status report from the SMSC", "没有从SMSC处接收到状态报告"),
    "CA": ("SCP gave no response", "SCP不返回响应消息"),
    "CB": ("SCP returned an error", "SCP返回错误响应消息"),
    "DA": ("DSMP gave no response", "DSMP不返回响应消息"),
    "DB": ("DSMP returned an error", "DSMP返回错误响应消息"),
    "SA": ("SP gave no response", "SP不返回响应消息"),
    "SB": ("SP returned an error", "SP返回错误响应消息"),
    "IA": ("next ISMG gave no response", "下一级ISMG不返回响应消息"),
    "IB": ("next ISMG returned an error", "下一级ISMG返回错误响应消息"),
    "IC": ("no status report from the next ISMG", "没有从下一级ISMG处接收到状态报告"),
}


def _lookup(table: dict, code: int) -> Meaning:
    entry = table.get(code)
    if entry is None:
        return _other(code)
    return Meaning(code, *entry)


def connect_status(code: int) -> Meaning:
    """Meaning of a CONNECT_RESP Status."""
    return _lookup(CONNECT_STATUS, code)


def submit_result(code: int) -> Meaning:
    """Meaning of a SUBMIT_RESP Result (the 0-13 table, used for 2.x and 3.0)."""
    return _lookup(SUBMIT_RESULT, code)


def deliver_result(code: int) -> Meaning:
    """Meaning of a DELIVER_RESP Result (0-8; 9 and above are other errors)."""
    return _lookup(DELIVER_RESULT, code)


def fwd_result(code: int) -> Meaning:
    """Meaning of a FWD_RESP Result."""
    return _lookup(FWD_RESULT, code)


def report_stat(stat: str) -> Meaning:
    """Meaning of a status report Stat; only DELIVRD is success.

    ``XX:nnnn`` codes with a known prefix get the prefix's meaning plus the raw code;
    anything else is an other error carrying the raw text.
    """
    entry = REPORT_STAT.get(stat)
    if entry is not None:
        return Meaning(stat, *entry)
    prefix = REPORT_PREFIX.get(stat[:2]) if stat[2:3] == ":" else None
    if prefix is not None:
        english, chinese = prefix
        return Meaning(stat, f"{english} ({stat})", f"{chinese}（{stat}）")
    return _other(stat)
