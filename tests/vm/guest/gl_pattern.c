/*
 * Guest GL test: renders a known pattern with OpenGL ES 2 on the GPU (GBM + EGL on KMS,
 * Mesa's virgl driver in the guest), checks every pixel with glReadPixels, then shows the
 * frame on the first connector so the host can check the display too.
 *
 * The pattern, in screen coordinates (y down) of a W x H mode:
 *   quadrants cleared to red (top left), green (top right), blue (bottom left), white
 *   (bottom right), then a yellow rectangle drawn with a shader (a triangle pair through a
 *   vertex buffer) over [W/4, 3W/4) x [H/4, 3H/4).
 *
 * Prints "NEEP: gl-renderer <GL_RENDERER>", "NEEP: gl-readpixels ok|<first difference>",
 * "NEEP: gl-shown WxH", then keeps the frame shown for the seconds given as its argument, or
 * without one until "exit" arrives on stdin.
 */
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <fcntl.h>
#include <gbm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

static void fail(const char *what)
{
    printf("NEEP: gl-failed %s\n", what);
    fflush(stdout);
    exit(1);
}

/* Expected colour of screen pixel (x, y), as RGBA bytes. */
static void expected_rgba(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint8_t out[4])
{
    static const uint8_t colours[5][4] = {
        {255, 0, 0, 255},     {0, 255, 0, 255},   {0, 0, 255, 255},
        {255, 255, 255, 255}, {255, 255, 0, 255},
    };
    int index;
    if (x >= w / 4 && x < 3 * w / 4 && y >= h / 4 && y < 3 * h / 4) {
        index = 4;
    } else {
        index = (y >= h / 2 ? 2 : 0) + (x >= w / 2 ? 1 : 0);
    }
    memcpy(out, colours[index], 4);
}

/* Clears a screen-space rectangle (y down) to a colour. */
static void clear_rect(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t screen_h, float r,
                       float g, float b)
{
    glScissor((GLint)x, (GLint)(screen_h - y - h), (GLsizei)w, (GLsizei)h);
    glClearColor(r, g, b, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
}

static GLuint compile(GLenum type, const char *source)
{
    GLuint shader = glCreateShader(type);
    glShaderSource(shader, 1, &source, NULL);
    glCompileShader(shader);
    GLint ok = 0;
    glGetShaderiv(shader, GL_COMPILE_STATUS, &ok);
    if (!ok) {
        fail("shader-compile");
    }
    return shader;
}

static void draw_pattern(uint32_t w, uint32_t h)
{
    glViewport(0, 0, (GLsizei)w, (GLsizei)h);
    glEnable(GL_SCISSOR_TEST);
    clear_rect(0, 0, w / 2, h / 2, h, 1, 0, 0);
    clear_rect(w / 2, 0, w - w / 2, h / 2, h, 0, 1, 0);
    clear_rect(0, h / 2, w / 2, h - h / 2, h, 0, 0, 1);
    clear_rect(w / 2, h / 2, w - w / 2, h - h / 2, h, 1, 1, 1);
    glDisable(GL_SCISSOR_TEST);

    /* The centre rectangle through the whole pipeline: its edges fall on pixel boundaries
     * (the viewport is the rectangle), so no pixel is partly covered. */
    GLuint program = glCreateProgram();
    glAttachShader(program, compile(GL_VERTEX_SHADER, "attribute vec2 position;\n"
                                                      "void main() {\n"
                                                      "  gl_Position = vec4(position, 0.0, 1.0);\n"
                                                      "}\n"));
    glAttachShader(program,
                   compile(GL_FRAGMENT_SHADER, "precision mediump float;\n"
                                               "void main() {\n"
                                               "  gl_FragColor = vec4(1.0, 1.0, 0.0, 1.0);\n"
                                               "}\n"));
    glBindAttribLocation(program, 0, "position");
    glLinkProgram(program);
    GLint ok = 0;
    glGetProgramiv(program, GL_LINK_STATUS, &ok);
    if (!ok) {
        fail("program-link");
    }
    glUseProgram(program);
    static const float quad[] = {-1, -1, 1, -1, -1, 1, -1, 1, 1, -1, 1, 1};
    GLuint buffer;
    glGenBuffers(1, &buffer);
    glBindBuffer(GL_ARRAY_BUFFER, buffer);
    glBufferData(GL_ARRAY_BUFFER, sizeof(quad), quad, GL_STATIC_DRAW);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, NULL);
    glEnableVertexAttribArray(0);
    glViewport((GLint)(w / 4), (GLint)(h - 3 * h / 4), (GLsizei)(3 * w / 4 - w / 4),
               (GLsizei)(3 * h / 4 - h / 4));
    glDrawArrays(GL_TRIANGLES, 0, 6);
    glFinish();
}

static void check_pixels(uint32_t w, uint32_t h)
{
    uint8_t *pixels = malloc((size_t)w * h * 4);
    if (!pixels) {
        fail("malloc");
    }
    glReadPixels(0, 0, (GLsizei)w, (GLsizei)h, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
    uint64_t wrong = 0;
    for (uint32_t row = 0; row < h; row++) {
        uint32_t y = h - 1 - row; /* glReadPixels rows go bottom up */
        for (uint32_t x = 0; x < w; x++) {
            uint8_t expected[4];
            expected_rgba(x, y, w, h, expected);
            const uint8_t *got = pixels + ((size_t)row * w + x) * 4;
            if (memcmp(got, expected, 4) != 0) {
                if (wrong == 0) {
                    printf("NEEP: gl-readpixels first difference at (%u,%u): %u,%u,%u,%u "
                           "expected %u,%u,%u,%u\n",
                           x, y, got[0], got[1], got[2], got[3], expected[0], expected[1],
                           expected[2], expected[3]);
                }
                wrong++;
            }
        }
    }
    free(pixels);
    if (wrong) {
        printf("NEEP: gl-readpixels %llu pixels differ\n", (unsigned long long)wrong);
    } else {
        printf("NEEP: gl-readpixels ok\n");
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fail("open-card0");
    }
    drmModeRes *resources = drmModeGetResources(fd);
    if (!resources) {
        fail("get-resources");
    }
    drmModeConnector *connector = NULL;
    for (int i = 0; i < resources->count_connectors && !connector; i++) {
        drmModeConnector *candidate = drmModeGetConnector(fd, resources->connectors[i]);
        if (candidate && candidate->connection == DRM_MODE_CONNECTED &&
            candidate->count_modes > 0) {
            connector = candidate;
        } else if (candidate) {
            drmModeFreeConnector(candidate);
        }
    }
    if (!connector || resources->count_crtcs < 1) {
        fail("no-connector");
    }
    drmModeModeInfo mode = connector->modes[0];
    uint32_t crtc_id = resources->crtcs[0];
    uint32_t w = mode.hdisplay, h = mode.vdisplay;

    struct gbm_device *gbm = gbm_create_device(fd);
    struct gbm_surface *surface =
        gbm ? gbm_surface_create(gbm, w, h, GBM_FORMAT_XRGB8888,
                                 GBM_BO_USE_SCANOUT | GBM_BO_USE_RENDERING)
            : NULL;
    if (!surface) {
        fail("gbm");
    }
    PFNEGLGETPLATFORMDISPLAYEXTPROC get_platform_display =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    EGLDisplay display = get_platform_display(EGL_PLATFORM_GBM_KHR, gbm, NULL);
    if (display == EGL_NO_DISPLAY || !eglInitialize(display, NULL, NULL) ||
        !eglBindAPI(EGL_OPENGL_ES_API)) {
        fail("egl-init");
    }
    static const EGLint config_attributes[] = {EGL_SURFACE_TYPE,
                                               EGL_WINDOW_BIT,
                                               EGL_RED_SIZE,
                                               8,
                                               EGL_GREEN_SIZE,
                                               8,
                                               EGL_BLUE_SIZE,
                                               8,
                                               EGL_RENDERABLE_TYPE,
                                               EGL_OPENGL_ES2_BIT,
                                               EGL_NONE};
    EGLConfig configs[64];
    EGLint count = 0;
    eglChooseConfig(display, config_attributes, configs, 64, &count);
    EGLConfig config = NULL;
    for (EGLint i = 0; i < count; i++) {
        EGLint visual = 0;
        eglGetConfigAttrib(display, configs[i], EGL_NATIVE_VISUAL_ID, &visual);
        if ((uint32_t)visual == GBM_FORMAT_XRGB8888) {
            config = configs[i];
            break;
        }
    }
    if (!config) {
        fail("egl-config");
    }
    static const EGLint context_attributes[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
    EGLContext context = eglCreateContext(display, config, EGL_NO_CONTEXT, context_attributes);
    EGLSurface egl_surface =
        eglCreateWindowSurface(display, config, (EGLNativeWindowType)surface, NULL);
    if (context == EGL_NO_CONTEXT || egl_surface == EGL_NO_SURFACE ||
        !eglMakeCurrent(display, egl_surface, egl_surface, context)) {
        fail("egl-context");
    }
    printf("NEEP: gl-renderer %s\n", (const char *)glGetString(GL_RENDERER));

    draw_pattern(w, h);
    check_pixels(w, h);

    eglSwapBuffers(display, egl_surface);
    struct gbm_bo *bo = gbm_surface_lock_front_buffer(surface);
    uint32_t fb_id = 0;
    if (!bo || drmModeAddFB(fd, w, h, 24, 32, gbm_bo_get_stride(bo), gbm_bo_get_handle(bo).u32,
                            &fb_id) != 0) {
        fail("add-fb");
    }
    if (drmModeSetCrtc(fd, crtc_id, fb_id, 0, 0, &connector->connector_id, 1, &mode) != 0) {
        fail("set-crtc");
    }
    printf("NEEP: gl-shown %ux%u\n", w, h);

    if (argc > 1) {
        sleep((unsigned)atoi(argv[1]));
    } else {
        char line[64];
        while (fgets(line, sizeof(line), stdin) && strncmp(line, "exit", 4) != 0) {
        }
    }
    drmModeRmFB(fd, fb_id);
    gbm_surface_release_buffer(surface, bo);
    eglTerminate(display);
    return 0;
}
