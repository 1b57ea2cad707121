/*
 * q4_gather_s8_mve.c - slices along one axis copied by a constant index table, for cores with
 * Helium (MVE, Cortex-M55/M85). Bit-exact with q4_gather_s8 (a copy).
 *
 * Scheme (docs/kernels.md, "Gather (and copies)"). Per outer slice the output is the bytes
 * x[index[j] * inner + i] for j < n_index, i < inner: runs of consecutive indices are runs of
 * contiguous bytes. The index table is read once per call to count them; then, an identity table
 * (a whole copy) aside:
 *  - byte gathers, when there are at least 4 outer slices of at most 256 bytes whose runs
 *    average under 16 bytes or whose output is at most 64 bytes (ShuffleNet's channel shuffle,
 *    the halves a Split takes of it, channel splits, any permutation): the source offsets of 16
 *    output bytes are built once into a vector (from the indices' low bytes by one gather when
 *    inner = 1), then one VLDRB with that offset vector and one store per outer slice. An output
 *    of at most 64 bytes per slice keeps all its offset vectors in registers and goes slice by
 *    slice; when it is not a multiple of 16 bytes, 2, 4, .. slices side by side form one group
 *    (the fewest whose output is, within 64 output and 256 input bytes), otherwise the last block
 *    ends at the slice's end, overlapping the one before (the same bytes written twice);
 *  - the same with 16-bit offsets, 8 bytes per gather, for slices of up to 65536 bytes whose runs
 *    average under 16 bytes;
 *  - otherwise each run is found once and copied in every outer slice in turn by whole vectors,
 *    the last ending at the run's end (under 16 bytes: one pair predicated once per run; over 64
 *    bytes: 128 bytes per step and a predicated tail), when the runs average 4 bytes or more;
 *    else (fewer than 4 outer slices of runs of a few bytes) the portable kernel runs.
 * Every path copies bytes, so repeated and out-of-order indices are exact. Scratch: none.
 */
#include "q4_kernels.h"
#include "q4_gather.h"
#include "q4_kernels_opt.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE

#include <arm_mve.h>

/* dst[0 .. n) = src[0 .. n) (not overlapping): 128 bytes (8 vectors) per step, then 16, then a
 * predicated tail. */
static void q4_copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    int32_t blocks;
    for (blocks = n >> 7; blocks > 0; --blocks, src += 128, dst += 128) {
        const int8x16_t v0 = vldrbq_s8(src), v1 = vldrbq_s8(src + 16);
        const int8x16_t v2 = vldrbq_s8(src + 32), v3 = vldrbq_s8(src + 48);
        const int8x16_t v4 = vldrbq_s8(src + 64), v5 = vldrbq_s8(src + 80);
        const int8x16_t v6 = vldrbq_s8(src + 96), v7 = vldrbq_s8(src + 112);
        vstrbq_s8(dst, v0);
        vstrbq_s8(dst + 16, v1);
        vstrbq_s8(dst + 32, v2);
        vstrbq_s8(dst + 48, v3);
        vstrbq_s8(dst + 64, v4);
        vstrbq_s8(dst + 80, v5);
        vstrbq_s8(dst + 96, v6);
        vstrbq_s8(dst + 112, v7);
    }
    for (n &= 127; n >= 16; n -= 16, src += 16, dst += 16) {
        vstrbq_s8(dst, vldrbq_s8(src));
    }
    if (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
    }
}

/* One run of len bytes in each of count outer slices: dst[o * out_step + i] =
 * src[o * in_step + i] for i < len. Runs of 16 to 64 bytes by whole vectors, the last one ending
 * at the run's end (it may overlap the one before: the same bytes are written twice); shorter
 * ones by a predicated pair (predicate made once), longer ones by q4_copy_bytes. */
static void q4_copy_run(int8_t *dst, const int8_t *src, int32_t len, int32_t count,
                        int32_t in_step, int32_t out_step)
{
    const int32_t last = len - 16;
    int32_t o;
    if (len > 64) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            q4_copy_bytes(dst, src, len);
        }
    } else if (len < 16) {
        const mve_pred16_t p = vctp8q((uint32_t)len);
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
        }
    } else if (len <= 32) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            const int8x16_t v0 = vldrbq_s8(src), v1 = vldrbq_s8(src + last);
            vstrbq_s8(dst, v0);
            vstrbq_s8(dst + last, v1);
        }
    } else if (len <= 48) {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            const int8x16_t v0 = vldrbq_s8(src), v1 = vldrbq_s8(src + 16);
            const int8x16_t v2 = vldrbq_s8(src + last);
            vstrbq_s8(dst, v0);
            vstrbq_s8(dst + 16, v1);
            vstrbq_s8(dst + last, v2);
        }
    } else {
        for (o = 0; o < count; ++o, src += in_step, dst += out_step) {
            const int8x16_t v0 = vldrbq_s8(src), v1 = vldrbq_s8(src + 16);
            const int8x16_t v2 = vldrbq_s8(src + 32), v3 = vldrbq_s8(src + last);
            vstrbq_s8(dst, v0);
            vstrbq_s8(dst + 16, v1);
            vstrbq_s8(dst + 32, v2);
            vstrbq_s8(dst + last, v3);
        }
    }
}

/* The source offset (within one outer slice) of output byte t. */
static inline int32_t q4_gather_offset(const int32_t *index, int32_t inner, int32_t t)
{
    return inner == 1 ? index[t] : index[t / inner] * inner + t % inner;
}

/* The gather's map: the index table, inner, and one outer slice's input and output bytes. */
typedef struct {
    const int32_t *index;
    int32_t inner, in_span, out_span;
} q4_gather_map;

/* The 8-bit source offsets of output bytes t .. t + 15 of one outer slice (t + lanes <=
 * out_span; lanes from `lanes` on: 0). With inner = 1 they are the low bytes of index[t .. t + 15]
 * (little-endian), one byte gather (offsets 0, 4, .., 60); else computed lane by lane. */
static uint8x16_t q4_offsets_u8(const q4_gather_map *map, int32_t t, int32_t lanes)
{
    uint8_t off[16];
    int32_t l;
    if (map->inner == 1) {
        const mve_pred16_t p = vctp8q((uint32_t)lanes);
        return vldrbq_gather_offset_z_u8((const uint8_t *)(map->index + t), vidupq_n_u8(0, 4), p);
    }
    for (l = 0; l < 16; ++l) {
        off[l] = (uint8_t)(l < lanes ? q4_gather_offset(map->index, map->inner, t + l) : 0);
    }
    return vldrbq_u8(off);
}

/* The offsets of a group of `fold` outer slices side by side (fold * out_span <= 64 bytes): the
 * first slice's blocks, then each further slice's as the first's plus its input start (a block
 * spilling into the next slice's place is overwritten by it). table: 80 bytes. */
static void q4_group_offsets(const q4_gather_map *map, int32_t fold, uint8_t *table)
{
    const int32_t out_span = map->out_span;
    int32_t t, p;
    for (t = 0; t < out_span; t += 16) {
        vstrbq_u8(table + t, q4_offsets_u8(map, t, out_span - t < 16 ? out_span - t : 16));
    }
    for (p = 1; p < fold; ++p) {
        for (t = 0; t < out_span; t += 16) {
            vstrbq_u8(table + p * out_span + t,
                      vaddq_n_u8(vldrbq_u8(table + t), (uint8_t)(p * map->in_span)));
        }
    }
}

/* Groups of outer slices side by side, each group in_span input and out_span output bytes
 * (in_span <= 256): 16 output bytes per byte gather with 8-bit offsets. A group of at most 64
 * output bytes keeps all its offset vectors (from table) in registers and is done group by group,
 * the last block ending at the group's end (overlapping the one before), under 16 bytes one
 * predicated block; wider ones (one slice each) block by block across the groups, the last block
 * again ending at the group's end. */
static void q4_gather_u8_groups(const q4_gather_map *map, const uint8_t *table, int32_t outer,
                                int32_t in_span, int32_t out_span, const int8_t *input,
                                int8_t *output)
{
    const uint8_t *src = (const uint8_t *)input;
    uint8_t *dst = (uint8_t *)output;
    const int32_t last = out_span - 16;
    int32_t t, o;
    if (out_span < 16) {
        const uint8x16_t f0 = vldrbq_u8(table);
        const mve_pred16_t p = vctp8q((uint32_t)out_span);
        for (o = 0; o < outer; ++o, src += in_span, dst += out_span) {
            vstrbq_p_u8(dst, vldrbq_gather_offset_u8(src, f0), p);
        }
    } else if (out_span <= 32) {
        const uint8x16_t f0 = vldrbq_u8(table), f1 = vldrbq_u8(table + last);
        for (o = 0; o < outer; ++o, src += in_span, dst += out_span) {
            const uint8x16_t v0 = vldrbq_gather_offset_u8(src, f0);
            const uint8x16_t v1 = vldrbq_gather_offset_u8(src, f1);
            vstrbq_u8(dst, v0);
            vstrbq_u8(dst + last, v1);
        }
    } else if (out_span <= 48) {
        const uint8x16_t f0 = vldrbq_u8(table), f1 = vldrbq_u8(table + 16);
        const uint8x16_t f2 = vldrbq_u8(table + last);
        for (o = 0; o < outer; ++o, src += in_span, dst += out_span) {
            const uint8x16_t v0 = vldrbq_gather_offset_u8(src, f0);
            const uint8x16_t v1 = vldrbq_gather_offset_u8(src, f1);
            const uint8x16_t v2 = vldrbq_gather_offset_u8(src, f2);
            vstrbq_u8(dst, v0);
            vstrbq_u8(dst + 16, v1);
            vstrbq_u8(dst + last, v2);
        }
    } else if (out_span <= 64) {
        const uint8x16_t f0 = vldrbq_u8(table), f1 = vldrbq_u8(table + 16);
        const uint8x16_t f2 = vldrbq_u8(table + 32), f3 = vldrbq_u8(table + last);
        for (o = 0; o < outer; ++o, src += in_span, dst += out_span) {
            const uint8x16_t v0 = vldrbq_gather_offset_u8(src, f0);
            const uint8x16_t v1 = vldrbq_gather_offset_u8(src, f1);
            const uint8x16_t v2 = vldrbq_gather_offset_u8(src, f2);
            const uint8x16_t v3 = vldrbq_gather_offset_u8(src, f3);
            vstrbq_u8(dst, v0);
            vstrbq_u8(dst + 16, v1);
            vstrbq_u8(dst + 32, v2);
            vstrbq_u8(dst + last, v3);
        }
    } else {
        for (t = 0; t < out_span; t += 16) {
            const int32_t at = t < last ? t : last;
            const uint8x16_t f = q4_offsets_u8(map, at, 16);
            const uint8_t *s = src;
            uint8_t *d = dst + at;
            for (o = 0; o < outer; ++o, s += in_span, d += out_span) {
                vstrbq_u8(d, vldrbq_gather_offset_u8(s, f));
            }
        }
    }
}

/* Short runs, in_span <= 256. When an outer slice's output is not a multiple of 16 bytes, F
 * slices side by side (the fewest whose output is, at most 64 bytes and 256 input bytes) are
 * taken as one group, so its blocks need neither overlap nor predicate; the slices left over
 * (outer mod F) go one by one. */
static void q4_gather_u8(int32_t outer, int32_t in_span, int32_t out_span, int32_t inner,
                         const int32_t *index, const int8_t *input, int8_t *output)
{
    const q4_gather_map map = {index, inner, in_span, out_span};
    uint8_t table[80];
    int32_t fold = 1;
    while ((fold * out_span) % 16 != 0) {
        fold *= 2;
    }
    if (fold > 1 && fold * out_span <= 64 && fold * in_span <= 256 && outer >= 2 * fold) {
        const int32_t groups = outer / fold;
        q4_group_offsets(&map, fold, table);
        q4_gather_u8_groups(&map, table, groups, fold * in_span, fold * out_span, input, output);
        input += groups * fold * in_span;
        output += groups * fold * out_span;
        outer -= groups * fold;
    }
    if (outer > 0) {
        if (out_span <= 64) {
            q4_group_offsets(&map, 1, table);
        }
        q4_gather_u8_groups(&map, table, outer, in_span, out_span, input, output);
    }
}

/* Short runs, in_span <= 65536: 8 output bytes per byte gather with 16-bit offsets. */
static void q4_gather_u16(int32_t outer, int32_t in_span, int32_t out_span, int32_t inner,
                          const int32_t *index, const int8_t *input, int8_t *output)
{
    uint16_t off[8];
    int32_t t, o, l;
    for (t = 0; t < out_span; t += 8) {
        const int32_t lanes = out_span - t < 8 ? out_span - t : 8;
        const uint8_t *src = (const uint8_t *)input;
        uint8_t *dst = (uint8_t *)output + t;
        uint16x8_t offsets;
        if (inner == 1) { /* the low halfwords of index[t .. t + 7] */
            offsets = vldrhq_gather_offset_z_u16((const uint16_t *)(index + t),
                                                 vidupq_n_u16(0, 4), vctp16q((uint32_t)lanes));
        } else {
            for (l = 0; l < 8; ++l) {
                off[l] = (uint16_t)(l < lanes ? q4_gather_offset(index, inner, t + l) : 0);
            }
            offsets = vldrhq_u16(off);
        }
        if (lanes == 8) {
            for (o = 0; o < outer; ++o, src += in_span, dst += out_span) {
                vstrbq_u16(dst, vldrbq_gather_offset_u16(src, offsets));
            }
        } else {
            const mve_pred16_t p = vctp16q((uint32_t)lanes);
            for (o = 0; o < outer; ++o, src += in_span, dst += out_span) {
                vstrbq_p_u16(dst, vldrbq_gather_offset_u16(src, offsets), p);
            }
        }
    }
}

void q4_gather_s8_mve(const q4_gather_params *params, const int8_t *input, int8_t *output)
{
    const int32_t outer = params->outer, axis_size = params->axis_size, inner = params->inner;
    const int32_t n = params->n_index, *index = params->index;
    const int32_t in_span = axis_size * inner, out_span = n * inner;
    int32_t runs = 1, j;

    if (outer <= 0 || n <= 0 || inner <= 0) {
        return;
    }
    for (j = 1; j < n; ++j) {
        runs += index[j] != index[j - 1] + 1;
    }
    if (runs == 1 && index[0] == 0 && n == axis_size) { /* identity: one copy */
        q4_copy_bytes(output, input, outer * in_span);
    } else if ((out_span < 16 * runs || out_span <= 64) && outer >= 4 && in_span <= 256) {
        q4_gather_u8(outer, in_span, out_span, inner, index, input, output);
    } else if (out_span < 16 * runs && outer >= 4 && in_span <= 65536) {
        q4_gather_u16(outer, in_span, out_span, inner, index, input, output);
    } else if (out_span < 4 * runs) { /* runs of a few bytes, offsets not worth building */
        q4_gather_s8(params, input, output);
    } else { /* each run across all outer slices */
        int32_t start = 0, out_at = 0;
        for (j = 1; j <= n; ++j) {
            if (j == n || index[j] != index[j - 1] + 1) {
                const int32_t len = (j - start) * inner;
                q4_copy_run(output + out_at, input + index[start] * inner, len, outer, in_span,
                            out_span);
                out_at += len;
                start = j;
            }
        }
    }
}

#else

void q4_gather_s8_mve(const q4_gather_params *params, const int8_t *input, int8_t *output)
{
    q4_gather_s8(params, input, output);
}

#endif
