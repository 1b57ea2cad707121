/* q4_band_p4.c - packed 4-bit activations at the speed of the int8 kernels.
 *
 * A layer whose tensors are stored packed (two 4-bit activations per byte, q4_packed.h) runs an
 * optimised int8 kernel (q4_kernels_opt.h) band by band: the input rows one band of output rows
 * reads are unpacked into an int8 staging area, the kernel computes the band (its input is that
 * window of rows, its pad_top shifted so that the band's first output row reads the same input
 * rows as in the whole layer), and its int8 output is packed into place. Output row oy of the
 * layer reads input rows oy * stride_h - pad_top + [0, kh); rows outside the input are padding in
 * both the layer and the band (the band's window ends where the input ends or holds every row its
 * outputs read), so each output value is the kernel's value on the whole tensor: bit-exact with
 * the unpacked layer whenever the kernel is. The kernel's scratch comes first in `scratch`
 * (kernel_scratch_bytes, a multiple of 4), the staging after it: q4_conv_band_p4_get_buffer_size.
 *
 * Unpacking sign-extends nibbles (MVE: VSHL/VSHR.S8 and an interleaving VST2 per 32 elements;
 * otherwise 4 bytes per step spread to 8 by shifts and masks); packing keeps the low nibble of
 * each int8 (VLD2 + VSLI; otherwise 4 per step).
 */
#include "q4_packed.h"
#include "q4_fixedpoint.h"

#if defined(__ARM_FEATURE_MVE) && __ARM_FEATURE_MVE
#include <arm_mve.h>
#define Q4_BAND_MVE 1
#else
#define Q4_BAND_MVE 0
#endif

#if !Q4_BAND_MVE
static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Four nibbles (16 bits) -> four sign-extended bytes, element order kept. */
static uint32_t spread4(uint32_t h)
{
    uint32_t t = (h | (h << 8)) & 0x00FF00FFu;
    t = (t | (t << 4)) & 0x0F0F0F0Fu;
    /* per byte v in [0, 15]: ((v ^ 8) + 0x78) ^ 0x80 is v sign-extended from 4 bits (the byte
     * (v ^ 8) - 8), and (v ^ 8) + 0x78 <= 0x87 never carries into the next byte */
    return ((t ^ 0x08080808u) + 0x78787878u) ^ 0x80808080u;
}
#endif

/* Elements [start, start + n) of packed storage -> n int8. */
void q4_unpack4_run(const uint8_t *src, int32_t start, int32_t n, int8_t *dst)
{
    const uint8_t *s;
    int32_t pairs, j;
    uint8_t *d = (uint8_t *)dst;

    if (n <= 0) {
        return;
    }
    if (start & 1) {
        *d++ = (uint8_t)q4_nibble_get(src, start);
        ++start;
        --n;
    }
    s = src + (start >> 1);
    pairs = n >> 1;
#if Q4_BAND_MVE
    for (; pairs >= 16; pairs -= 16, s += 16, d += 32) {
        const int8x16_t b = vreinterpretq_s8_u8(vld1q_u8(s));
        int8x16x2_t v;
        v.val[0] = vshrq_n_s8(vshlq_n_s8(b, 4), 4);
        v.val[1] = vshrq_n_s8(b, 4);
        vst2q_s8((int8_t *)d, v);
    }
#else
    for (; pairs >= 4; pairs -= 4, s += 4, d += 8) {
        const uint32_t w = load_u32(s);
        store_u32(d, spread4(w & 0xFFFFu));
        store_u32(d + 4, spread4(w >> 16));
    }
#endif
    for (j = 0; j < pairs; ++j) {
        const uint32_t b = s[j];
        d[2 * j] = (uint8_t)(((((b & 0xFu) ^ 8u) + 0x78u) ^ 0x80u) & 0xFFu);
        d[2 * j + 1] = (uint8_t)(((((b >> 4) ^ 8u) + 0x78u) ^ 0x80u) & 0xFFu);
    }
    if (n & 1) {
        d[2 * pairs] = (uint8_t)q4_nibble_get(s, 2 * pairs);
    }
}

/* n int8 -> elements [start, start + n) of packed storage (the nibbles outside kept). */
void q4_pack4_run(const int8_t *src, int32_t n, uint8_t *dst, int32_t start)
{
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d;
    int32_t pairs, j;

    if (n <= 0) {
        return;
    }
    if (start & 1) {
        q4_nibble_set(dst, start, (int32_t)*s++);
        ++start;
        --n;
    }
    d = dst + (start >> 1);
    pairs = n >> 1;
#if Q4_BAND_MVE
    for (; pairs >= 16; pairs -= 16, s += 32, d += 16) {
        const uint8x16x2_t v = vld2q_u8(s);
        vst1q_u8(d, vsliq_n_u8(v.val[0], v.val[1], 4));
    }
#else
    for (; pairs >= 4; pairs -= 4, s += 8, d += 4) {
        uint32_t a = load_u32(s) & 0x0F0F0F0Fu, b = load_u32(s + 4) & 0x0F0F0F0Fu;
        a |= a >> 4; /* byte 0: e0 | e1 << 4, byte 2: e2 | e3 << 4 */
        b |= b >> 4;
        store_u32(d, (a & 0xFFu) | ((a >> 8) & 0xFF00u) | ((b & 0xFFu) << 16) |
                         ((b << 8) & 0xFF000000u));
    }
#endif
    for (j = 0; j < pairs; ++j) {
        d[j] = (uint8_t)(((uint32_t)s[2 * j] & 0xFu) | (((uint32_t)s[2 * j + 1] & 0xFu) << 4));
    }
    if (n & 1) {
        q4_nibble_set(d, 2 * pairs, (int32_t)(int8_t)s[2 * pairs]);
    }
}

/* The first input row a band of output rows reads, clipped to the input, and the row count. */
static int32_t band_in_rows(const q4_conv_params *params, int32_t kernel_h, int32_t in_h,
                            int32_t oy, int32_t rows, int32_t *first)
{
    const int32_t top = oy * params->stride_h - params->pad_top;
    const int32_t start = top < 0 ? 0 : top;
    int32_t end = top + (rows - 1) * params->stride_h + kernel_h;
    end = end > in_h ? in_h : end;
    *first = start;
    return end > start ? end - start : 0;
}

int32_t q4_conv_band_p4_get_buffer_size(const q4_conv_params *params, const q4_dims *input_dims,
                                        const q4_dims *filter_dims, const q4_dims *output_dims,
                                        int32_t n_packed_inputs, int32_t output_packed,
                                        int32_t band_rows)
{
    int32_t in_rows = (band_rows - 1) * params->stride_h + filter_dims->h;
    in_rows = in_rows > input_dims->h ? input_dims->h : in_rows;
    return n_packed_inputs * in_rows * input_dims->w * input_dims->c +
           (output_packed ? band_rows * output_dims->w * output_dims->c : 0);
}

/* Shared by the single- and multi-term bands: the inputs' rows of one band, as int8 pointers. */
static const int8_t *band_input(q4_src input, int32_t first, int32_t n_rows, int32_t row_len,
                                int8_t **staging)
{
    const int8_t *rows;
    if (input.bits != 4) {
        return (const int8_t *)input.data + first * row_len;
    }
    rows = *staging;
    q4_unpack4_run(input.data, first * row_len, n_rows * row_len, *staging);
    *staging += n_rows * row_len;
    return rows;
}

static int8_t *band_output(q4_dst output, int32_t oy, int32_t row_len, int8_t *staging)
{
    return output.bits == 4 ? staging : (int8_t *)output.data + oy * row_len;
}

static void band_store(q4_dst output, int32_t oy, int32_t rows, int32_t row_len,
                       const int8_t *staging)
{
    if (output.bits == 4) {
        q4_pack4_run(staging, rows * row_len, output.data, oy * row_len);
    }
}

void q4_conv_band_p4(const q4_conv_params *params, const q4_quant_params *quant,
                     const q4_dims *input_dims, q4_src input, const q4_dims *filter_dims,
                     const uint8_t *filter, const int32_t *bias, const q4_dims *output_dims,
                     q4_dst output, int32_t *scratch, q4_conv_s8_kernel kernel,
                     int32_t band_rows, int32_t kernel_scratch_bytes)
{
    const int32_t in_row = input_dims->w * input_dims->c;
    const int32_t out_row = output_dims->w * output_dims->c;
    int8_t *const staging = (int8_t *)scratch + kernel_scratch_bytes;
    q4_conv_params band = *params;
    int32_t oy;

    for (oy = 0; oy < output_dims->h; oy += band_rows) {
        const int32_t rows = output_dims->h - oy < band_rows ? output_dims->h - oy : band_rows;
        int32_t first;
        const int32_t n_in = band_in_rows(params, filter_dims->h, input_dims->h, oy, rows,
                                          &first);
        int8_t *next = staging;
        const int8_t *in = band_input(input, first, n_in, in_row, &next);
        int8_t *out = band_output(output, oy, out_row, next);
        const q4_dims in_dims = {n_in, input_dims->w, input_dims->c};
        const q4_dims out_dims = {rows, output_dims->w, output_dims->c};
        band.pad_top = first - (oy * params->stride_h - params->pad_top);
        kernel(&band, quant, &in_dims, in, filter_dims, filter, bias, &out_dims, out, scratch);
        band_store(output, oy, rows, out_row, out);
    }
}

void q4_conv_terms_band_p4(const q4_conv_params *params, const q4_terms_params *terms,
                           const q4_dims *input_dims, const q4_src *inputs,
                           const q4_dims *filter_dims, const uint8_t *const *filters,
                           const int32_t *bias, const q4_dims *output_dims, q4_dst output,
                           int32_t *scratch, q4_conv_terms_s8_kernel kernel, int32_t band_rows,
                           int32_t kernel_scratch_bytes)
{
    const int32_t in_row = input_dims->w * input_dims->c;
    const int32_t out_row = output_dims->w * output_dims->c;
    int8_t *const staging = (int8_t *)scratch + kernel_scratch_bytes;
    q4_conv_params band = *params;
    int32_t oy, i;

    for (oy = 0; oy < output_dims->h; oy += band_rows) {
        const int32_t rows = output_dims->h - oy < band_rows ? output_dims->h - oy : band_rows;
        int32_t first;
        const int32_t n_in = band_in_rows(params, filter_dims->h, input_dims->h, oy, rows,
                                          &first);
        int8_t *next = staging;
        const int8_t *in[2] = {0, 0};
        int8_t *out;
        const q4_dims in_dims = {n_in, input_dims->w, input_dims->c};
        const q4_dims out_dims = {rows, output_dims->w, output_dims->c};
        for (i = 0; i < terms->n_inputs && i < 2; ++i) {
            in[i] = band_input(inputs[i], first, n_in, in_row, &next);
        }
        out = band_output(output, oy, out_row, next);
        band.pad_top = first - (oy * params->stride_h - params->pad_top);
        kernel(&band, terms, &in_dims, in, filter_dims, filters, bias, &out_dims, out, scratch);
        band_store(output, oy, rows, out_row, out);
    }
}

void q4_fc_band_p4(const q4_fc_params *params, const q4_quant_params *quant, int32_t input_size,
                   q4_src input, const uint8_t *filter, const int32_t *bias,
                   int32_t output_size, q4_dst output, int32_t *scratch, q4_fc_s8_kernel kernel,
                   int32_t kernel_scratch_bytes)
{
    int8_t *next = (int8_t *)scratch + kernel_scratch_bytes;
    const int8_t *in = band_input(input, 0, 1, input_size, &next);
    int8_t *out = band_output(output, 0, output_size, next);
    kernel(params, quant, input_size, in, filter, bias, output_size, out, scratch);
    band_store(output, 0, 1, output_size, out);
}

int32_t q4_fc_band_p4_get_buffer_size(int32_t input_size, int32_t output_size,
                                      int32_t input_packed, int32_t output_packed)
{
    return (input_packed ? input_size : 0) + (output_packed ? output_size : 0);
}
