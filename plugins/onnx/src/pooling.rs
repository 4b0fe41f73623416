//! Pooling token vectors into one vector per text, and L2 normalisation.

use crate::config::Pooling;

/// Pools a row-major `[rows, cols, dim]` hidden-state tensor into `rows` vectors.
/// `mask` is `[rows, cols]` with 1 for real tokens and 0 for padding.
pub(crate) fn pool(
    hidden: &[f32],
    mask: &[i64],
    rows: usize,
    cols: usize,
    dim: usize,
    pooling: Pooling,
    normalize: bool,
) -> Vec<Vec<f32>> {
    (0..rows)
        .map(|r| {
            let text = &hidden[r * cols * dim..(r + 1) * cols * dim];
            let mut out = match pooling {
                Pooling::Cls => text[..dim].to_vec(),
                Pooling::Mean => {
                    let mut sum = vec![0f32; dim];
                    let mut count = 0f32;
                    for (token, &m) in text.chunks_exact(dim).zip(&mask[r * cols..(r + 1) * cols]) {
                        if m != 0 {
                            count += 1.0;
                            sum.iter_mut().zip(token).for_each(|(s, v)| *s += v);
                        }
                    }
                    let count = count.max(1.0);
                    sum.iter_mut().for_each(|s| *s /= count);
                    sum
                }
            };
            if normalize {
                l2_normalize(&mut out);
            }
            out
        })
        .collect()
}

/// Scales `v` to unit length; a zero vector stays zero.
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_ignores_padding() {
        // two texts, three positions, dim 2; the second text has one real token
        let hidden = [
            1.0, 2.0, 3.0, 4.0, 100.0, 100.0, 5.0, 6.0, 100.0, 100.0, 100.0, 100.0,
        ];
        let mask = [1, 1, 0, 1, 0, 0];
        let out = pool(&hidden, &mask, 2, 3, 2, Pooling::Mean, false);
        assert_eq!(out, vec![vec![2.0, 3.0], vec![5.0, 6.0]]);
    }

    #[test]
    fn cls_pooling_takes_first_token_and_normalises() {
        let hidden = [3.0, 4.0, 9.0, 9.0];
        let out = pool(&hidden, &[1, 1], 1, 2, 2, Pooling::Cls, true);
        assert_eq!(out, vec![vec![0.6, 0.8]]);
    }

    #[test]
    fn zero_vector_stays_zero() {
        let mut v = [0.0f32; 3];
        l2_normalize(&mut v);
        assert_eq!(v, [0.0; 3]);
    }
}
