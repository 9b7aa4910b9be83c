/*
 * A 128-byte EDID 1.4 base block for a virtual monitor whose preferred (and first detailed)
 * timing is exactly the scanout's size.
 */
#include <string.h>

#include "device_internal.h"

#define EDID_BYTES 128
/* Blanking in the style of CVT reduced blanking, enough for any driver to accept. */
#define H_FRONT_PORCH 48u
#define H_SYNC        32u
#define H_BLANK       160u
#define V_FRONT_PORCH 3u
#define V_SYNC        5u
#define V_BLANK       35u
/* Detailed timings store the pixel clock in 10 kHz units in 16 bits. */
#define MAX_PIXEL_CLOCK_10KHZ 65535u
#define DPI                   96u

static void put_detailed_timing(uint8_t *d, uint32_t width, uint32_t height)
{
    uint32_t h_total = width + H_BLANK;
    uint32_t v_total = height + V_BLANK;
    /* 60 Hz, or the highest rate whose clock fits when the mode is very large. */
    uint64_t per_frame = (uint64_t)h_total * v_total;
    uint64_t refresh_hz = 60;
    if (per_frame * refresh_hz / 10000 > MAX_PIXEL_CLOCK_10KHZ) {
        refresh_hz = (uint64_t)MAX_PIXEL_CLOCK_10KHZ * 10000 / per_frame;
    }
    uint32_t clock_10khz = (uint32_t)((per_frame * refresh_hz + 9999) / 10000);
    if (clock_10khz > MAX_PIXEL_CLOCK_10KHZ) {
        clock_10khz = MAX_PIXEL_CLOCK_10KHZ;
    }
    uint32_t width_mm = width * 254 / (DPI * 10);
    uint32_t height_mm = height * 254 / (DPI * 10);

    d[0] = (uint8_t)(clock_10khz & 0xff);
    d[1] = (uint8_t)(clock_10khz >> 8);
    d[2] = (uint8_t)(width & 0xff);
    d[3] = (uint8_t)(H_BLANK & 0xff);
    d[4] = (uint8_t)(((width >> 8) & 0xf) << 4 | ((H_BLANK >> 8) & 0xf));
    d[5] = (uint8_t)(height & 0xff);
    d[6] = (uint8_t)(V_BLANK & 0xff);
    d[7] = (uint8_t)(((height >> 8) & 0xf) << 4 | ((V_BLANK >> 8) & 0xf));
    d[8] = (uint8_t)(H_FRONT_PORCH & 0xff);
    d[9] = (uint8_t)(H_SYNC & 0xff);
    d[10] = (uint8_t)((V_FRONT_PORCH & 0xf) << 4 | (V_SYNC & 0xf));
    d[11] = (uint8_t)(((H_FRONT_PORCH >> 8) & 3) << 6 | ((H_SYNC >> 8) & 3) << 4 |
                      ((V_FRONT_PORCH >> 4) & 3) << 2 | ((V_SYNC >> 4) & 3));
    d[12] = (uint8_t)(width_mm & 0xff);
    d[13] = (uint8_t)(height_mm & 0xff);
    d[14] = (uint8_t)(((width_mm >> 8) & 0xf) << 4 | ((height_mm >> 8) & 0xf));
    d[15] = 0;
    d[16] = 0;
    d[17] = 0x1e; /* digital separate sync, +hsync +vsync */
}

static void put_text_descriptor(uint8_t *d, uint8_t tag, const char *text)
{
    memset(d, 0, 18);
    d[3] = tag;
    size_t length = strlen(text);
    if (length > 13) {
        length = 13;
    }
    memset(d + 5, ' ', 13);
    memcpy(d + 5, text, length);
    if (length < 13) {
        d[5 + length] = '\n';
    }
}

static void put_range_limits(uint8_t *d)
{
    memset(d, 0, 18);
    d[3] = 0xfd;
    d[5] = 1;   /* min vertical rate, Hz */
    d[6] = 120; /* max vertical rate, Hz */
    d[7] = 1;   /* min horizontal rate, kHz */
    d[8] = 255; /* max horizontal rate, kHz */
    d[9] = 255; /* max pixel clock, 10 MHz units */
    d[10] = 1;  /* no timing formula: range limits only */
    d[11] = '\n';
    memset(d + 12, ' ', 6);
}

void edid_generate(uint8_t edid[EDID_BYTES], uint32_t width_px, uint32_t height_px, uint32_t serial)
{
    static const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
    memset(edid, 0, EDID_BYTES);
    memcpy(edid, header, sizeof(header));
    /* Manufacturer "NEP": three 5-bit letters, A = 1. */
    uint16_t vendor = (uint16_t)(('N' - '@') << 10 | ('E' - '@') << 5 | ('P' - '@'));
    edid[8] = (uint8_t)(vendor >> 8);
    edid[9] = (uint8_t)(vendor & 0xff);
    edid[10] = 0x01; /* product code */
    edid[12] = (uint8_t)(serial & 0xff);
    edid[13] = (uint8_t)(serial >> 8);
    edid[16] = 1;  /* week */
    edid[17] = 36; /* 2026 - 1990 */
    edid[18] = 1;  /* EDID 1.4 */
    edid[19] = 4;
    edid[20] = 0xa5; /* digital, 8 bits per colour, DisplayPort-like */
    uint32_t width_cm = width_px * 254 / (DPI * 100);
    uint32_t height_cm = height_px * 254 / (DPI * 100);
    edid[21] = (uint8_t)(width_cm > 0 ? width_cm : 1);
    edid[22] = (uint8_t)(height_cm > 0 ? height_cm : 1);
    edid[23] = 120;  /* gamma 2.2 */
    edid[24] = 0x06; /* sRGB default, preferred timing is native */
    /* sRGB chromaticity. */
    static const uint8_t chroma[10] = {0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54};
    memcpy(edid + 25, chroma, sizeof(chroma));
    /* No established timings; standard timings unused. */
    memset(edid + 38, 0x01, 16);

    put_detailed_timing(edid + 54, width_px, height_px);
    put_text_descriptor(edid + 72, 0xfc, "neep");
    put_range_limits(edid + 90);
    put_text_descriptor(edid + 108, 0xff, "neep-virtual");

    uint8_t sum = 0;
    for (int i = 0; i < EDID_BYTES - 1; i++) {
        sum = (uint8_t)(sum + edid[i]);
    }
    edid[EDID_BYTES - 1] = (uint8_t)(0x100 - sum);
}
