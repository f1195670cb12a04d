//! Shape arithmetic: axes, element counts and strides, broadcasting, MatMul and Reshape shapes.

pub(super) fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let axis = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&axis).then_some(axis as usize)
}

pub(super) fn normalize_axes(axes: &[i64], rank: usize) -> Option<Vec<usize>> {
    axes.iter().map(|&a| normalize_axis(a, rank)).collect()
}

/// The number of elements of a tensor of `dims`; usize::MAX for dimensions that are negative or
/// whose product overflows (a hostile graph's), which every size limit then refuses.
pub(super) fn element_count(dims: &[i64]) -> usize {
    dims.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d))).unwrap_or(usize::MAX)
}

pub(super) fn strides(dims: &[i64]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1] as usize;
    }
    strides
}

/// Call `f` with every multi-index of a tensor of `dims`, in element order.
pub(super) fn for_each_index(dims: &[i64], mut f: impl FnMut(&[usize])) {
    let count = element_count(dims);
    let mut index = vec![0usize; dims.len()];
    for _ in 0..count {
        f(&index);
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] as usize {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// numpy broadcasting of several shapes; None if they do not broadcast.
pub(super) fn broadcast(shapes: &[&[i64]]) -> Option<Vec<i64>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1; rank];
    for shape in shapes {
        let offset = rank - shape.len();
        for (i, &d) in shape.iter().enumerate() {
            let o = &mut out[offset + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// For each element of a tensor of `out` dims, the index of the element it comes from in a
/// tensor of `dims` broadcast to `out`.
pub(super) fn broadcast_indices(dims: &[i64], out: &[i64]) -> Vec<usize> {
    let offset = out.len() - dims.len();
    let in_strides = strides(dims);
    let mut indices = Vec::with_capacity(element_count(out));
    for_each_index(out, |index| {
        indices.push((0..dims.len()).filter(|&a| dims[a] != 1).map(|a| index[offset + a] * in_strides[a]).sum());
    });
    indices
}

pub(super) fn matmul_dims(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    let (a_vector, b_vector) = (a.len() == 1, b.len() == 1);
    if a_vector {
        a.insert(0, 1);
    }
    if b_vector {
        b.push(1);
    }
    if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
        return None;
    }
    let mut out = broadcast(&[&a[..a.len() - 2], &b[..b.len() - 2]])?;
    if !a_vector {
        out.push(a[a.len() - 2]);
    }
    if !b_vector {
        out.push(b[b.len() - 1]);
    }
    Some(out)
}

pub(super) fn reshape_dims(input: &[i64], target: &[i64], allow_zero: bool) -> Option<Vec<i64>> {
    let total: i64 = input.iter().product();
    let mut out: Vec<i64> = target
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 0 && !allow_zero { input.get(i).copied() } else { Some(d) })
        .collect::<Option<_>>()?;
    let unknown: Vec<usize> = (0..out.len()).filter(|&i| out[i] == -1).collect();
    if unknown.len() > 1 || out.iter().any(|&d| d < -1) {
        return None;
    }
    if let Some(&i) = unknown.first() {
        let known: i64 = out.iter().filter(|&&d| d != -1).product();
        if known == 0 || total % known != 0 {
            return None;
        }
        out[i] = total / known;
    }
    (out.iter().product::<i64>() == total).then_some(out)
}
