/* band_harness.c - the packed band kernels (q4_band_p4.c) against the portable packed kernels, with
 * the scratch sized exactly by the generator's formula and guarded.
 *
 * Usage: band_harness KIND H W C KH KW SH SW PT PL O ROWS N_IN IN_BITS OUT_BITS KERNEL_SCRATCH SEED
 * KIND: 0 conv2d, 1 depthwise, 2 fc (H W C: input, KH KW: kernel, O: output channels; fc uses
 * C inputs and O outputs). N_IN: 1, or 2 for a multi-term conv (two inputs, dual weights).
 * Prints "staging N" (the C formula) and "ok", or the first difference / scratch overrun and exits 1.
 * The inner "optimised" kernel is the portable one behind an adapter that also fills the first
 * KERNEL_SCRATCH bytes of scratch (the most an optimised kernel may use).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q4_kernels.h"
#include "q4_packed.h"

static uint32_t rng_state;
static int32_t rnd(int32_t lo, int32_t hi)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return lo + (int32_t)((rng_state >> 8) % (uint32_t)(hi - lo + 1));
}

static int32_t kernel_scratch_used;

static void fill_kernel_scratch(int32_t *scratch)
{
    memset(scratch, 0x5A, (size_t)kernel_scratch_used);
}

static void conv_kernel(const q4_conv_params *p, const q4_quant_params *q, const q4_dims *id,
                        const int8_t *in, const q4_dims *fd, const uint8_t *f, const int32_t *b,
                        const q4_dims *od, int8_t *out, int32_t *scratch)
{
    fill_kernel_scratch(scratch);
    q4_conv2d_s4(p, q, id, in, fd, f, b, od, out);
}

static void dw_kernel(const q4_conv_params *p, const q4_quant_params *q, const q4_dims *id,
                      const int8_t *in, const q4_dims *fd, const uint8_t *f, const int32_t *b,
                      const q4_dims *od, int8_t *out, int32_t *scratch)
{
    fill_kernel_scratch(scratch);
    q4_depthwise_conv2d_s4(p, q, id, in, fd, f, b, od, out);
}

static void terms_kernel(const q4_conv_params *p, const q4_terms_params *t, const q4_dims *id,
                         const int8_t *const *in, const q4_dims *fd, const uint8_t *const *f,
                         const int32_t *b, const q4_dims *od, int8_t *out, int32_t *scratch)
{
    fill_kernel_scratch(scratch);
    q4_conv2d_s4_terms(p, t, id, in, fd, f, b, od, out);
}

static void fc_kernel(const q4_fc_params *p, const q4_quant_params *q, int32_t n_in,
                      const int8_t *in, const uint8_t *f, const int32_t *b, int32_t n_out,
                      int8_t *out, int32_t *scratch)
{
    fill_kernel_scratch(scratch);
    q4_fully_connected_s4(p, q, n_in, in, f, b, n_out, out);
}

static uint8_t *tensor(int32_t n, int32_t bits)
{
    const int32_t bytes = bits == 4 ? (n + 1) / 2 : n;
    uint8_t *t = malloc((size_t)bytes + 1);
    int32_t i;
    for (i = 0; i < bytes; ++i) {
        t[i] = (uint8_t)rnd(0, 255);
    }
    return t;
}

int main(int argc, char **argv)
{
    int32_t a[17], i, staging, total, bytes_out, n_out;
    uint8_t *in[2], *filters[2], *out_band, *out_ref, *scratch_bytes;
    int32_t *bias, *mult, *shift, *scratch, mult_terms[4 * 256];
    q4_dims id, fd, od;
    q4_conv_params p = {0}; /* the fields left out (dilation, ...) are their defaults */
    const int guard = 64;

    if (argc != 18) {
        fprintf(stderr, "17 arguments\n");
        return 2;
    }
    for (i = 0; i < 17; ++i) {
        a[i] = atoi(argv[i + 1]);
    }
    const int32_t kind = a[0], n_in = a[12], in_bits = a[13], out_bits = a[14];
    const int32_t rows = a[11];
    kernel_scratch_used = a[15];
    rng_state = (uint32_t)a[16];
    id.h = a[1];
    id.w = a[2];
    id.c = a[3];
    fd.h = a[4];
    fd.w = a[5];
    fd.c = a[3];
    p.input_zp = rnd(-3, 3);
    p.output_zp = rnd(-2, 2);
    p.stride_h = a[6];
    p.stride_w = a[7];
    p.pad_top = a[8];
    p.pad_left = a[9];
    p.act_min = out_bits == 4 ? -8 : -128;
    p.act_max = out_bits == 4 ? 7 : 127;
    const int32_t o = kind == 1 ? id.c : a[10];
    od.c = o;
    od.h = kind == 2 ? 1 : (id.h + 2 * p.pad_top - fd.h) / p.stride_h + 1;
    od.w = kind == 2 ? 1 : (id.w + 2 * p.pad_left - fd.w) / p.stride_w + 1;
    const int32_t n_input = kind == 2 ? id.c : id.h * id.w * id.c;
    n_out = od.h * od.w * o;
    const int32_t k = kind == 0 ? fd.h * fd.w * id.c : kind == 1 ? fd.h * fd.w : id.c;
    for (i = 0; i < n_in; ++i) {
        in[i] = tensor(n_input, in_bits);
        filters[i] = tensor(o * ((k + 1) / 2), 8);
    }
    bias = malloc(sizeof(int32_t) * (size_t)o);
    mult = malloc(sizeof(int32_t) * (size_t)o);
    shift = malloc(sizeof(int32_t) * (size_t)o);
    for (i = 0; i < o; ++i) {
        bias[i] = rnd(-2000, 2000);
        mult[i] = rnd(1 << 29, (1 << 30) - 1);
        shift[i] = rnd(33, 40);
    }
    for (i = 0; i < 4 * o; ++i) {
        mult_terms[i] = rnd(-(1 << 20), 1 << 20);
    }
    bytes_out = out_bits == 4 ? (n_out + 1) / 2 : n_out;
    out_band = malloc((size_t)bytes_out);
    out_ref = malloc((size_t)bytes_out);
    memset(out_band, 0x33, (size_t)bytes_out);
    memset(out_ref, 0x33, (size_t)bytes_out);

    if (kind == 2) {
        staging = q4_fc_band_p4_get_buffer_size(id.c, o, in_bits == 4, out_bits == 4);
    } else {
        staging = q4_conv_band_p4_get_buffer_size(&p, &id, &fd, &od, in_bits == 4 ? n_in : 0,
                                                  out_bits == 4, rows);
    }
    printf("staging %d\n", (int)staging);
    total = kernel_scratch_used + staging;
    scratch = malloc((size_t)(total + guard + 3) / 4 * 4);
    scratch_bytes = (uint8_t *)scratch;
    memset(scratch_bytes, 0xA5, (size_t)(total + guard));

    {
        const q4_quant_params q = {mult, shift};
        const q4_src src0 = {in[0], in_bits};
        const q4_dst dst_band = {out_band, out_bits}, dst_ref = {out_ref, out_bits};
        if (kind == 2) {
            const q4_fc_params fp = {p.input_zp, p.output_zp, p.act_min, p.act_max};
            q4_fc_band_p4(&fp, &q, id.c, src0, filters[0], bias, o, dst_band, scratch,
                          fc_kernel, kernel_scratch_used);
            q4_fully_connected_s4_p4(&fp, &q, id.c, src0, filters[0], bias, o, dst_ref);
        } else if (n_in == 2) {
            const q4_terms_params t = {2, 2, {p.input_zp, rnd(-3, 3)}, mult_terms, shift};
            const q4_src srcs[2] = {{in[0], in_bits}, {in[1], in_bits}};
            q4_conv_terms_band_p4(&p, &t, &id, srcs, &fd, (const uint8_t *const *)filters, bias,
                                  &od, dst_band, scratch, terms_kernel, rows,
                                  kernel_scratch_used);
            q4_conv2d_s4_terms_p4(&p, &t, &id, srcs, &fd, (const uint8_t *const *)filters, bias,
                                  &od, dst_ref);
        } else if (kind == 1) {
            q4_conv_band_p4(&p, &q, &id, src0, &fd, filters[0], bias, &od, dst_band, scratch,
                            dw_kernel, rows, kernel_scratch_used);
            q4_depthwise_conv2d_s4_p4(&p, &q, &id, src0, &fd, filters[0], bias, &od, dst_ref);
        } else {
            q4_conv_band_p4(&p, &q, &id, src0, &fd, filters[0], bias, &od, dst_band, scratch,
                            conv_kernel, rows, kernel_scratch_used);
            q4_conv2d_s4_p4(&p, &q, &id, src0, &fd, filters[0], bias, &od, dst_ref);
        }
    }
    for (i = 0; i < guard; ++i) {
        if (scratch_bytes[total + i] != 0xA5) {
            printf("scratch overrun at byte %d of %d\n", (int)(total + i), (int)total);
            return 1;
        }
    }
    for (i = 0; i < bytes_out; ++i) {
        if (out_band[i] != out_ref[i]) {
            printf("output byte %d: band %d, reference %d\n", (int)i, out_band[i], out_ref[i]);
            return 1;
        }
    }
    printf("ok\n");
    return 0;
}
