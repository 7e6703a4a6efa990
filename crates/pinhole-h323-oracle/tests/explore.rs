use pinhole_h323_oracle::*;
#[test]
fn explore() {
    for e in std::fs::read_dir("../../tests/corpus/h323/msg").unwrap() {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        for f in tpkt_frames(&data).unwrap() {
            let r = if f[0] == 8 { inspect(Kind::UserInformation, q931_user_user(f).unwrap()) } else { inspect(Kind::H245, f) };
            println!("{}: {:?}", p.display(), r.as_ref().map(|r| &r.addresses));
            if let Ok(r) = r { println!("   {}", &r.norm[..r.norm.len().min(3000)]); }
        }
    }
}
