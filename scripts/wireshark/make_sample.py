# SPDX-License-Identifier: BSD-3-Clause
"""Write a small classic pcap of nsplit frames, built byte for byte as include/nsplit/wire.h says
(and as dataplane/wire.c encodes them), to try scripts/wireshark/nsplit.lua on.

    /usr/bin/python3 scripts/wireshark/make_sample.py [out.pcap]

Wire version 2: a 60-byte nsplit header with frame_crc (CRC32C of the frame's payload) at 52 and
hdr_crc (CRC32C of header bytes 0..55) at 56; msg_crc (CRC32C of the whole message) only in the
frame that carries the message's last byte, 0 in the others and in acks.

The frames tell one story: peer 0 sends peer 1 activation message 12 (5000 bytes, frag 1412 =
1500 - 20 - 8 - 60 for MTU 1500, so 4 frames); frame 1 arrives, frame 2 arrives corrupted (one
payload bit flipped after its frame_crc was taken: receivers drop it), frame 3 (the last, with
msg_crc and poll) arrives, peer 1 acks with 2 missing ranges (frame 0 and frame 2), peer 0
retransmits frames 0 and 2, and a one-frame gradient message has a wrong hdr_crc. Last, a frame
of wire version 1 (56-byte header, hdr_crc at 52), which the dissector shows as unsupported.
Standard library only.
"""
import struct
import sys

UDP_PORT = 7311
VERSION = 2
HDR_LEN = 60
SESSION = 0xC0FFEE01
MAC = [bytes([0x02, 0, 0, 0, 0, 0x10]), bytes([0x02, 0, 0, 0, 0, 0x11])]
IP = [0x0A000001, 0x0A000002]  # 10.0.0.1 (peer 0), 10.0.0.2 (peer 1)

ACTIVATION, GRADIENT, ACK = 1, 2, 6
F_POLL, F_RETRANSMIT = 0x1, 0x2
ACK_COMPLETE, ACK_HAS_ABOUT = 0x1, 0x2


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC32C (Castagnoli), as nsl_crc32c(crc, data, len)."""
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def ip_checksum(hdr):
    s = sum(struct.unpack("!10H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def nsplit_hdr(type_, flags, src, dst, stage, micro, rnd, step, msg_id, msg_crc, total_len, offset, frag,
               length, frame_crc, bad_crc=False):
    """nsl_wire_hdr_encode: 56 big-endian bytes (frame_crc last), then CRC32C of them."""
    h = struct.pack("!BBHIHHHHIIIIQQHHI", VERSION, type_, flags, SESSION, src, dst, stage, micro, rnd, step,
                    msg_id, msg_crc, total_len, offset, frag, length, frame_crc)
    assert len(h) == 56
    crc = crc32c(h)
    if bad_crc:
        crc ^= 0x00000100  # one bit flipped
    h += struct.pack("!I", crc)
    assert len(h) == HDR_LEN
    return h


def nsplit_hdr_v1(type_, flags, src, dst, msg_id, msg_crc, total_len, offset, frag, length):
    """A version-1 header: 52 bytes as in version 2 but without frame_crc, then their CRC32C."""
    h = struct.pack("!BBHIHHHHIIIIQQHH", 1, type_, flags, SESSION, src, dst, 0, 0, 0, 0, msg_id, msg_crc,
                    total_len, offset, frag, length)
    return h + struct.pack("!I", crc32c(h))


def l2l4(src, dst, udp_payload_len, ip_id):
    """nsl_wire_l2l4_encode: Ethernet II, IPv4 (DF, TTL 64, checksum), UDP (checksum 0)."""
    eth = MAC[dst] + MAC[src] + struct.pack("!H", 0x0800)
    ip = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + 8 + udp_payload_len, ip_id, 0x4000, 64, 17, 0,
                               IP[src], IP[dst]))
    ip[10:12] = struct.pack("!H", ip_checksum(bytes(ip)))
    assert ip_checksum(bytes(ip)) == 0
    udp = struct.pack("!HHHH", UDP_PORT, UDP_PORT, 8 + udp_payload_len, 0)
    return eth + bytes(ip) + udp


def frame(src, dst, hdr, payload, ip_id):
    body = hdr + payload
    return l2l4(src, dst, len(body), ip_id) + body


def ack_payload(done_below, credit, about, status, received, flags, ranges):
    """nsl_wire_ack_encode."""
    p = struct.pack("!IIIIIHH", done_below, credit, about, status, received, len(ranges), flags)
    for first, count in ranges:
        p += struct.pack("!II", first, count)
    return p


def data_frame(src, dst, type_, flags, msg, msg_id, offset, frag, stage, micro, rnd, step, ip_id, bad_crc=False,
               corrupt=False):
    """One frame of msg, as the link sends it: msg_crc only when it carries the last byte. bad_crc
    flips a bit of hdr_crc; corrupt flips a payload bit after frame_crc was taken."""
    chunk = msg[offset:offset + frag]
    last = offset + len(chunk) == len(msg)
    hdr = nsplit_hdr(type_, flags, src, dst, stage, micro, rnd, step, msg_id, crc32c(msg) if last else 0, len(msg),
                     offset, frag, len(chunk), crc32c(chunk), bad_crc)
    if corrupt:
        chunk = bytearray(chunk)
        chunk[100] ^= 0x04
        chunk = bytes(chunk)
    return frame(src, dst, hdr, chunk, ip_id)


def frames():
    act = bytes((i * 7 + 3) & 0xFF for i in range(5000))  # message 12, 0 -> 1
    grad = bytes((i * 13 + 1) & 0xFF for i in range(300))  # message 3, 1 -> 0
    frag = 1412  # MTU 1500: 1500 - IPv4 20 - UDP 8 - nsplit 60
    out = [
        # frame 1 of 4: [1412, 2824)
        data_frame(0, 1, ACTIVATION, 0, act, 12, 1412, frag, 3, 1, 2, 7, 0x100),
        # frame 2 of 4: [2824, 4236), corrupted on the way: frame_crc no longer holds
        data_frame(0, 1, ACTIVATION, 0, act, 12, 2824, frag, 3, 1, 2, 7, 0x101, corrupt=True),
        # frame 3 of 4, the last: [4236, 5000), msg_crc, poll
        data_frame(0, 1, ACTIVATION, F_POLL, act, 12, 4236, frag, 3, 1, 2, 7, 0x102),
    ]
    ack = ack_payload(12, 45, 12, 0, 2, ACK_HAS_ABOUT, [(0, 1), (2, 1)])
    hdr = nsplit_hdr(ACK, 0, 1, 0, 0, 0, 0, 0, 0, 0, len(ack), 0, len(ack), len(ack), crc32c(ack))
    out.append(frame(1, 0, hdr, ack, 0x200))
    # frames 0 and 2 again: [0, 1412) and [2824, 4236), retransmit
    out.append(data_frame(0, 1, ACTIVATION, F_RETRANSMIT, act, 12, 0, frag, 3, 1, 2, 7, 0x103))
    out.append(data_frame(0, 1, ACTIVATION, F_RETRANSMIT, act, 12, 2824, frag, 3, 1, 2, 7, 0x104))
    # a whole 300-byte gradient in one frame, poll + retransmit, hdr_crc with a bit flipped
    out.append(data_frame(1, 0, GRADIENT, F_POLL | F_RETRANSMIT, grad, 3, 0, frag, 2, 0, 2, 7, 0x201,
                          bad_crc=True))
    # a one-frame control message of 64 bytes in wire version 1
    ctl = bytes(range(64))
    out.append(frame(0, 1, nsplit_hdr_v1(5, 0, 0, 1, 13, crc32c(ctl), len(ctl), 0, frag, len(ctl)), ctl, 0x105))
    return out


def write_pcap(path, pkts):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # LINKTYPE_ETHERNET
        for i, p in enumerate(pkts):
            f.write(struct.pack("<IIII", 1700000000, 1000 * (i + 1), len(p), len(p)))
            f.write(p)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "sample.pcap"
    pkts = frames()
    write_pcap(path, pkts)
    print(f"{path}: {len(pkts)} frames")


if __name__ == "__main__":
    main()
