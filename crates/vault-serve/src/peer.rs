//! Who is on the other end of a loopback TCP connection: the uid that owns
//! the client's socket, read from `/proc/self/net/tcp{,6}` as PuTTY's
//! `socket_peer_is_same_user` does (our network namespace's table, still
//! visible under systemd's `ProcSubset=pid`). Unlike a secret in the environment,
//! this works for every client library unmodified.

use std::net::{IpAddr, SocketAddr};

/// The uid owning the socket whose local address is `peer` and whose
/// remote address is `ours`, `None` when no such socket is listed (it
/// closed, or it lives in another network namespace).
pub fn peer_uid(ours: SocketAddr, peer: SocketAddr) -> std::io::Result<Option<u32>> {
    let table = match peer.ip() {
        IpAddr::V4(_) => "/proc/self/net/tcp",
        IpAddr::V6(_) => "/proc/self/net/tcp6",
    };
    let text = std::fs::read_to_string(table)?;
    Ok(find_uid(&text, peer, ours))
}

/// The `uid` column of the row with local address `local` and remote
/// address `remote`, in the text of `/proc/net/tcp` or `/proc/net/tcp6`.
pub fn find_uid(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace();
        let row_local = parse_address(fields.nth(1)?)?;
        let row_remote = parse_address(fields.next()?)?;
        // st, tx:rx, tr:when, retrnsmt, then uid.
        let uid = fields.nth(4)?.parse().ok()?;
        (row_local == local && row_remote == remote).then_some(uid)
    })
}

/// `0100007F:1F90` or 32 hex digits and a port. The kernel prints each
/// 32-bit word of the address as a native-endian integer (`%08X`) and the
/// port in host order.
fn parse_address(field: &str) -> Option<SocketAddr> {
    let (address, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for word in address.as_bytes().chunks(8) {
        let word = std::str::from_utf8(word).ok()?;
        bytes.extend_from_slice(&u32::from_str_radix(word, 16).ok()?.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words as a little-endian kernel prints them.
    fn word(bytes: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(bytes))
    }

    fn row(local: &str, remote: &str, uid: u32) -> String {
        format!(
            "   1: {local} {remote} 01 00000000:00000000 00:00000000 00000000 {uid:>5}        0 4242 1 0000000000000000 20 4 30 10 -1"
        )
    }

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

    #[test]
    fn the_client_row_is_told_from_the_server_row() {
        let lo = word([127, 0, 0, 1]);
        let server = format!("{lo}:1F90");
        let client = format!("{lo}:D431");
        let table = [
            HEADER.to_owned(),
            row(&format!("{lo}:1F90"), "00000000:0000", 0),
            // The server's accepted socket: local = server, remote = client.
            row(&server, &client, 1000),
            // The client's socket: local = client, remote = server.
            row(&client, &server, 65534),
        ]
        .join("\n");
        let ours: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let peer: SocketAddr = "127.0.0.1:54321".parse().expect("addr");
        assert_eq!(find_uid(&table, peer, ours), Some(65534));
        assert_eq!(find_uid(&table, ours, peer), Some(1000));
        let elsewhere: SocketAddr = "127.0.0.1:54322".parse().expect("addr");
        assert_eq!(find_uid(&table, elsewhere, ours), None);
    }

    #[test]
    fn ipv6_rows_are_read_word_by_word() {
        let loopback = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let address: String = loopback
            .chunks(4)
            .map(|c| word(<[u8; 4]>::try_from(c).expect("four bytes")))
            .collect();
        let table = [
            HEADER.to_owned(),
            row(&format!("{address}:9C40"), &format!("{address}:1F90"), 42),
        ]
        .join("\n");
        let ours: SocketAddr = "[::1]:8080".parse().expect("addr");
        let peer: SocketAddr = "[::1]:40000".parse().expect("addr");
        assert_eq!(find_uid(&table, peer, ours), Some(42));
    }

    #[test]
    fn this_process_owns_its_own_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server_side, peer) = listener.accept().expect("accept");
        let ours = server_side.local_addr().expect("addr");
        assert_eq!(peer, client.local_addr().expect("addr"));
        let uid = peer_uid(ours, peer).expect("readable /proc/net/tcp");
        assert_eq!(uid, Some(rustix::process::geteuid().as_raw()));
    }
}
