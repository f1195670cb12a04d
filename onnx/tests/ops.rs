//! Each building block the exporter uses, run through wonnx and checked against the same
//! arithmetic on the host.

use edgellm_onnx::graph::{GraphBuilder, Value};
use edgellm_onnx::runtime;
use wonnx::utils::attribute;

fn run(b: GraphBuilder, inputs: &[(&str, Vec<f32>)], out: &str) -> Vec<f32> {
    let model = b.finish("test");
    let session = pollster::block_on(runtime::session(model, "test")).unwrap();
    let inputs: Vec<(&str, wonnx::utils::InputTensor)> =
        inputs.iter().map(|(n, v)| (*n, v.as_slice().into())).collect();
    pollster::block_on(runtime::run(&session, &inputs, "test")).unwrap().remove(out).unwrap()
}

fn seq(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(d < 1e-4, "max diff {d}\n got {:?}\nwant {:?}", &a[..a.len().min(12)], &b[..b.len().min(12)]);
}

#[test]
fn matmul_one_row() {
    let (k, n) = (8, 6);
    let mut b = GraphBuilder::default();
    let x = b.input("x", &[1, k]);
    let w = b.constant("w", seq(k as usize * n as usize), &[k, n]);
    let y = b.matmul(&x, &w);
    b.output(&y, "y");
    let xv = seq(k as usize);
    let wv = seq((k * n) as usize);
    let want: Vec<f32> =
        (0..n as usize).map(|j| (0..k as usize).map(|i| xv[i] * wv[i * n as usize + j]).sum()).collect();
    close(&run(b, &[("x", xv)], "y"), &want);
}

#[test]
fn reduce_mean_and_broadcast() {
    let d = 8;
    let mut b = GraphBuilder::default();
    let x = b.input("x", &[1, d]);
    let sq = b.binary("Mul", &x, &x);
    let mean = b.op("ReduceMean", &[&sq], vec![attribute("axes", vec![1i64]), attribute("keepdims", 1i64)], &[1, 1]);
    let eps = b.constant("eps", vec![0.5], &[1]);
    let var = b.binary("Add", &mean, &eps);
    let rms = b.unary("Sqrt", &var);
    let y = b.binary("Div", &x, &rms);
    b.output(&y, "y");
    let xv = seq(d as usize);
    let m = xv.iter().map(|v| v * v).sum::<f32>() / d as f32;
    let want: Vec<f32> = xv.iter().map(|v| v / (m + 0.5).sqrt()).collect();
    close(&run(b, &[("x", xv)], "y"), &want);
}

#[test]
fn reshape_gather_concat_transpose() {
    let mut b = GraphBuilder::default();
    let a = b.input("a", &[3, 4]);
    let c = b.input("c", &[1, 4]);
    let all = b.concat0(&a, &c);
    let r = b.reshape(&all, &[4, 2, 2]);
    let t = b.transpose(&r, &[1, 2, 0]);
    let idx = b.int64_constant("idx", vec![0, 0, 1], &[3]);
    let g = b.op("Gather", &[&t, &idx], vec![attribute("axis", 0i64)], &[3, 2, 4]);
    b.output(&g, "y");
    let (av, cv) = (seq(12), vec![9.0, 8.0, 7.0, 6.0]);
    let all: Vec<f32> = av.iter().chain(&cv).copied().collect();
    // t[i][j][p] = all[p][i][j]
    let t: Vec<f32> = (0..2)
        .flat_map(|i| (0..2).flat_map(move |j| (0..4).map(move |p| (i, j, p))))
        .map(|(i, j, p)| all[p * 4 + i * 2 + j])
        .collect();
    let want: Vec<f32> = [0usize, 0, 1].iter().flat_map(|&h| t[h * 8..h * 8 + 8].to_vec()).collect();
    close(&run(b, &[("a", av), ("c", cv)], "y"), &want);
}

#[test]
fn pair_rotation() {
    let mut b = GraphBuilder::default();
    let x = b.input("x", &[4, 2]);
    let r = b.constant("r", vec![0.0, 1.0, -1.0, 0.0], &[2, 2]);
    let y: Value = b.matmul(&x, &r);
    b.output(&y, "y");
    let xv = seq(8);
    let want: Vec<f32> = xv.chunks(2).flat_map(|p| [-p[1], p[0]]).collect();
    close(&run(b, &[("x", xv)], "y"), &want);
}

#[test]
fn softmax_last_axis() {
    let (h, n) = (3, 6);
    let mut b = GraphBuilder::default();
    let s = b.input("s", &[h, 1, n]);
    let p = b.op("Softmax", &[&s], vec![attribute("axis", -1i64)], &[h, 1, n]);
    b.output(&p, "p");
    let sv = seq((h * n) as usize);
    let want: Vec<f32> = sv
        .chunks(n as usize)
        .flat_map(|s| {
            let m = s.iter().cloned().fold(f32::MIN, f32::max);
            let z: f32 = s.iter().map(|v| (v - m).exp()).sum();
            s.iter().map(move |v| (v - m).exp() / z).collect::<Vec<_>>()
        })
        .collect();
    close(&run(b, &[("s", sv)], "p"), &want);
}

/// wonnx's one-row MatMul shader computes only the first column when stacked, so attention
/// runs two-row stacks (the query row twice).
#[test]
fn stacked_two_row_matmul() {
    let (h, m, k, n) = (3, 2, 4, 6);
    let mut b = GraphBuilder::default();
    let q = b.input("q", &[h, m, k]);
    let kt = b.input("kt", &[h, k, n]);
    let s = b.matmul(&q, &kt);
    b.output(&s, "s");
    let (qv, kv) = (seq((h * m * k) as usize), seq((h * k * n) as usize));
    let (m, k, n) = (m as usize, k as usize, n as usize);
    let mut want = Vec::new();
    for hh in 0..h as usize {
        for r in 0..m {
            want.extend(
                (0..n).map(|j| (0..k).map(|i| qv[(hh * m + r) * k + i] * kv[hh * k * n + i * n + j]).sum::<f32>()),
            );
        }
    }
    close(&run(b, &[("q", qv), ("kt", kv)], "s"), &want);
}
