//! Denial of existence by compact answers (RFC 9824, "compact denial"): a name that does not
//! exist, or lacks the asked type, is answered NODATA with one NSEC owned by the query name
//! itself, whose next name is the name's immediate successor (`\000.<qname>`) and whose type
//! bitmap lists the types the name has (for a name that does not exist: only RRSIG, NSEC and
//! the NXNAME pseudo-type). One signature per name, and no chain that can be walked.
//!
//! Why this method: validators accept it as plain NSEC NODATA proofs (it has been served at
//! scale since 2016), it needs one signature per name where NSEC "white lies" (RFC 4470) need
//! two, and a name's proof does not depend on the other names of the zone, so pool names that
//! come and go with a reload need no chain to be rebuilt.

use hickory_proto::rr::Name;

use super::keys::name_wire;

/// RRSIG, NSEC and NXNAME (RFC 9824 §2: the name does not exist).
pub const TYPE_RRSIG: u16 = 46;
pub const TYPE_NSEC: u16 = 47;
pub const TYPE_NXNAME: u16 = 128;

/// The NSEC type bitmap (RFC 4034 §4.1.2) of `types`: window blocks of up to 32 octets, only
/// windows with a bit set, each as short as its highest set bit allows.
pub fn type_bitmap(types: &[u16]) -> Vec<u8> {
    let mut types = types.to_vec();
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < types.len() {
        let window = (types[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < types.len() && (types[i] >> 8) as u8 == window {
            let low = (types[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    out
}

/// The compact-denial NSEC RDATA for `qname` (canonical form): next name `\000.<qname>`, and
/// the bitmap of `types` plus RRSIG and NSEC. For a name that does not exist, `types` is
/// `[TYPE_NXNAME]`; for one without the asked type, the types it has.
pub fn compact_nsec(qname: &Name, types: &[u16]) -> Vec<u8> {
    let owner = name_wire(qname);
    let mut rdata = Vec::with_capacity(2 + owner.len() + 8);
    // The immediate successor in canonical order: a label holding one zero octet in front.
    rdata.push(1);
    rdata.push(0);
    rdata.extend_from_slice(&owner);
    let mut all = types.to_vec();
    all.extend_from_slice(&[TYPE_RRSIG, TYPE_NSEC]);
    rdata.extend_from_slice(&type_bitmap(&all));
    rdata
}

/// The bitmap of a name that does not exist: RRSIG, NSEC and NXNAME (window 0, 17 octets).
const NXNAME_BITMAP: [u8; 19] = {
    let mut b = [0u8; 19];
    b[1] = 17;
    b[2 + (TYPE_RRSIG / 8) as usize] |= 0x80 >> (TYPE_RRSIG % 8);
    b[2 + (TYPE_NSEC / 8) as usize] |= 0x80 >> (TYPE_NSEC % 8);
    b[2 + (TYPE_NXNAME / 8) as usize] |= 0x80 >> (TYPE_NXNAME % 8);
    b
};

/// The most octets of [`nxname_nsec_into`]'s RDATA.
pub const NXNAME_NSEC_MAX: usize = 2 + 255 + NXNAME_BITMAP.len();

/// [`compact_nsec`] for a name that does not exist, given as lowercase wire format, written
/// into `out` without allocating (the query path makes it per query). Returns its length.
pub fn nxname_nsec_into(qname: &[u8], out: &mut [u8; NXNAME_NSEC_MAX]) -> usize {
    let qname = &qname[..qname.len().min(255)];
    out[..2].copy_from_slice(&[1, 0]);
    let end = 2 + qname.len();
    out[2..end].copy_from_slice(qname);
    out[end..end + NXNAME_BITMAP.len()].copy_from_slice(&NXNAME_BITMAP);
    end + NXNAME_BITMAP.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// RFC 4034 §4.3's example: A MX RRSIG NSEC TYPE1234.
    #[test]
    fn bitmaps_are_windows_of_the_set_bits() {
        assert_eq!(
            type_bitmap(&[1, 15, 46, 47, 1234]),
            [
                0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, //
                0x04, 0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x20,
            ]
        );
        assert_eq!(type_bitmap(&[]), Vec::<u8>::new());
        // NXNAME (128) sits in window 0, octet 16.
        let b = type_bitmap(&[TYPE_NXNAME, TYPE_RRSIG, TYPE_NSEC]);
        assert_eq!(&b[..2], &[0, 17]);
        assert_eq!(b[2 + 16], 0x80);
    }

    #[test]
    fn the_wire_form_is_the_same_proof() {
        let q = Name::from_str("nope.z.test.").unwrap();
        let mut out = [0u8; NXNAME_NSEC_MAX];
        let n = nxname_nsec_into(&name_wire(&q), &mut out);
        assert_eq!(&out[..n], compact_nsec(&q, &[TYPE_NXNAME]));
    }

    #[test]
    fn the_next_name_is_the_immediate_successor() {
        let q = Name::from_str("Nope.Z.test.").unwrap();
        let r = compact_nsec(&q, &[TYPE_NXNAME]);
        assert_eq!(&r[..2], &[1, 0]);
        assert_eq!(&r[2..15], b"\x04nope\x01z\x04test\x00");
        assert_eq!(&r[15..17], &[0, 17], "window 0, 17 octets (up to NXNAME)");
    }
}
