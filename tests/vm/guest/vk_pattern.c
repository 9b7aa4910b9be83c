/*
 * Guest Vulkan test (venus): on the first device whose name says Venus,
 *  - a compute shader turns every word w of a 4096-word buffer into 3w + 7; the buffer lives in
 *    host-visible memory, written and checked through its mapping;
 *  - a render pass clears a 64x64 RGBA8 image to blue and draws a yellow triangle over the
 *    viewport [16, 48) x [16, 48); the image is copied into a mapped buffer and checked pixel
 *    by pixel.
 * Prints "NEEP: vk-device <name>", "NEEP: vk-compute ok|...", "NEEP: vk-render ok|...".
 *
 * With "bench N" it also measures, for the closing notes of the venus and gfxstream work: the
 * round trip of an empty vkQueueSubmit + fence wait (N times, on one fence, reset after each
 * wait), and the bandwidth of writes into mapped host-visible memory against writes into the
 * program's own memory.
 *
 * Shaders are SPIR-V made at build time by glslangValidator (shaders/vk_pattern.*).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vulkan/vulkan.h>

#include "vk_pattern_comp.h"
#include "vk_pattern_frag.h"
#include "vk_pattern_vert.h"

#define WORDS       4096u
#define SIZE_PX     64u
#define CHECK_VK(x) check_vk((x), #x)

static void check_vk(VkResult result, const char *what)
{
    if (result != VK_SUCCESS) {
        printf("NEEP: vk-failed %s = %d\n", what, (int)result);
        fflush(stdout);
        exit(1);
    }
}

struct gpu {
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool pool;
    VkPhysicalDeviceMemoryProperties memory;
};

struct buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    void *mapped;
};

static uint32_t memory_type(const struct gpu *gpu, uint32_t allowed, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < gpu->memory.memoryTypeCount; i++) {
        if ((allowed & (1u << i)) && (gpu->memory.memoryTypes[i].propertyFlags & want) == want) {
            return i;
        }
    }
    printf("NEEP: vk-failed no memory type 0x%x\n", want);
    exit(1);
}

static void open_gpu(struct gpu *gpu)
{
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "vk_pattern",
                             .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo instance_info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                          .pApplicationInfo = &app};
    CHECK_VK(vkCreateInstance(&instance_info, NULL, &gpu->instance));
    VkPhysicalDevice devices[8];
    uint32_t count = 8;
    CHECK_VK(vkEnumeratePhysicalDevices(gpu->instance, &count, devices));
    gpu->physical = VK_NULL_HANDLE;
    for (uint32_t i = 0; i < count; i++) {
        VkPhysicalDeviceProperties properties;
        vkGetPhysicalDeviceProperties(devices[i], &properties);
        /* VK_PATTERN_ANY_DEVICE=1 takes any device: to check this program on the host, and
         * for gfxstream (whose device carries the host's name) with its driver alone. */
        if (strstr(properties.deviceName, "Venus") || getenv("VK_PATTERN_ANY_DEVICE")) {
            gpu->physical = devices[i];
            printf("NEEP: vk-device %s\n", properties.deviceName);
            break;
        }
    }
    if (gpu->physical == VK_NULL_HANDLE) {
        printf("NEEP: vk-failed no Venus device among %u\n", count);
        exit(1);
    }
    vkGetPhysicalDeviceMemoryProperties(gpu->physical, &gpu->memory);
    VkQueueFamilyProperties families[8];
    uint32_t family_count = 8;
    vkGetPhysicalDeviceQueueFamilyProperties(gpu->physical, &family_count, families);
    gpu->queue_family = UINT32_MAX;
    for (uint32_t i = 0; i < family_count; i++) {
        VkQueueFlags needed = VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT;
        if ((families[i].queueFlags & needed) == needed) {
            gpu->queue_family = i;
            break;
        }
    }
    if (gpu->queue_family == UINT32_MAX) {
        printf("NEEP: vk-failed no graphics+compute queue\n");
        exit(1);
    }
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue_info = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                          .queueFamilyIndex = gpu->queue_family,
                                          .queueCount = 1,
                                          .pQueuePriorities = &priority};
    VkDeviceCreateInfo device_info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                                      .queueCreateInfoCount = 1,
                                      .pQueueCreateInfos = &queue_info};
    CHECK_VK(vkCreateDevice(gpu->physical, &device_info, NULL, &gpu->device));
    vkGetDeviceQueue(gpu->device, gpu->queue_family, 0, &gpu->queue);
    VkCommandPoolCreateInfo pool_info = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                         .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                         .queueFamilyIndex = gpu->queue_family};
    CHECK_VK(vkCreateCommandPool(gpu->device, &pool_info, NULL, &gpu->pool));
}

/* A buffer in host-visible, coherent memory, mapped. */
static void make_buffer(struct gpu *gpu, VkDeviceSize size, VkBufferUsageFlags usage,
                        struct buffer *out)
{
    VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                               .size = size,
                               .usage = usage,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    CHECK_VK(vkCreateBuffer(gpu->device, &info, NULL, &out->buffer));
    VkMemoryRequirements needs;
    vkGetBufferMemoryRequirements(gpu->device, out->buffer, &needs);
    VkMemoryAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                  .allocationSize = needs.size,
                                  .memoryTypeIndex =
                                      memory_type(gpu, needs.memoryTypeBits,
                                                  VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                      VK_MEMORY_PROPERTY_HOST_COHERENT_BIT)};
    CHECK_VK(vkAllocateMemory(gpu->device, &alloc, NULL, &out->memory));
    CHECK_VK(vkBindBufferMemory(gpu->device, out->buffer, out->memory, 0));
    CHECK_VK(vkMapMemory(gpu->device, out->memory, 0, VK_WHOLE_SIZE, 0, &out->mapped));
}

static VkCommandBuffer begin_commands(struct gpu *gpu)
{
    VkCommandBufferAllocateInfo info = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                        .commandPool = gpu->pool,
                                        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                        .commandBufferCount = 1};
    VkCommandBuffer commands;
    CHECK_VK(vkAllocateCommandBuffers(gpu->device, &info, &commands));
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    CHECK_VK(vkBeginCommandBuffer(commands, &begin));
    return commands;
}

/* Ends, submits and waits for `commands` (NULL: an empty submit). */
static void submit_and_wait(struct gpu *gpu, VkCommandBuffer commands)
{
    if (commands) {
        CHECK_VK(vkEndCommandBuffer(commands));
    }
    VkFenceCreateInfo fence_info = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence fence;
    CHECK_VK(vkCreateFence(gpu->device, &fence_info, NULL, &fence));
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                           .commandBufferCount = commands ? 1 : 0,
                           .pCommandBuffers = &commands};
    CHECK_VK(vkQueueSubmit(gpu->queue, 1, &submit, fence));
    CHECK_VK(vkWaitForFences(gpu->device, 1, &fence, VK_TRUE, UINT64_MAX));
    vkDestroyFence(gpu->device, fence, NULL);
}

static VkShaderModule shader(struct gpu *gpu, const uint32_t *code, size_t size)
{
    VkShaderModuleCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = size, .pCode = code};
    VkShaderModule module;
    CHECK_VK(vkCreateShaderModule(gpu->device, &info, NULL, &module));
    return module;
}

static void run_compute(struct gpu *gpu)
{
    struct buffer data;
    make_buffer(gpu, WORDS * 4, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, &data);
    uint32_t *words = data.mapped;
    for (uint32_t i = 0; i < WORDS; i++) {
        words[i] = i * 2654435761u;
    }
    VkDescriptorSetLayoutBinding binding = {.binding = 0,
                                            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                            .descriptorCount = 1,
                                            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo layout_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = 1,
        .pBindings = &binding};
    VkDescriptorSetLayout set_layout;
    CHECK_VK(vkCreateDescriptorSetLayout(gpu->device, &layout_info, NULL, &set_layout));
    VkPipelineLayoutCreateInfo pipeline_layout_info = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &set_layout};
    VkPipelineLayout pipeline_layout;
    CHECK_VK(vkCreatePipelineLayout(gpu->device, &pipeline_layout_info, NULL, &pipeline_layout));
    VkComputePipelineCreateInfo pipeline_info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = shader(gpu, vk_pattern_comp, sizeof(vk_pattern_comp)),
                  .pName = "main"},
        .layout = pipeline_layout};
    VkPipeline pipeline;
    CHECK_VK(
        vkCreateComputePipelines(gpu->device, VK_NULL_HANDLE, 1, &pipeline_info, NULL, &pipeline));
    VkDescriptorPoolSize pool_size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1};
    VkDescriptorPoolCreateInfo pool_info = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                            .maxSets = 1,
                                            .poolSizeCount = 1,
                                            .pPoolSizes = &pool_size};
    VkDescriptorPool pool;
    CHECK_VK(vkCreateDescriptorPool(gpu->device, &pool_info, NULL, &pool));
    VkDescriptorSetAllocateInfo set_info = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                            .descriptorPool = pool,
                                            .descriptorSetCount = 1,
                                            .pSetLayouts = &set_layout};
    VkDescriptorSet set;
    CHECK_VK(vkAllocateDescriptorSets(gpu->device, &set_info, &set));
    VkDescriptorBufferInfo buffer_info = {data.buffer, 0, VK_WHOLE_SIZE};
    VkWriteDescriptorSet write = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                  .dstSet = set,
                                  .descriptorCount = 1,
                                  .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                  .pBufferInfo = &buffer_info};
    vkUpdateDescriptorSets(gpu->device, 1, &write, 0, NULL);

    VkCommandBuffer commands = begin_commands(gpu);
    vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    vkCmdBindDescriptorSets(commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_layout, 0, 1, &set,
                            0, NULL);
    vkCmdDispatch(commands, WORDS / 64, 1, 1);
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                         0, 1, &barrier, 0, NULL, 0, NULL);
    submit_and_wait(gpu, commands);
    uint32_t wrong = 0, first = 0;
    for (uint32_t i = 0; i < WORDS; i++) {
        if (words[i] != i * 2654435761u * 3u + 7u && wrong++ == 0) {
            first = i;
        }
    }
    if (wrong) {
        printf("NEEP: vk-compute %u words wrong, first %u: 0x%08x\n", wrong, first, words[first]);
    } else {
        printf("NEEP: vk-compute ok\n");
    }
}

/* Expected RGBA of pixel (x, y): yellow inside the drawn viewport, blue elsewhere. */
static uint32_t expected_pixel(uint32_t x, uint32_t y)
{
    bool inside = x >= 16 && x < 48 && y >= 16 && y < 48;
    return inside ? 0xff00ffffu : 0xffff0000u; /* bytes R, G, B, A little-endian */
}

static void run_render(struct gpu *gpu)
{
    const VkFormat format = VK_FORMAT_R8G8B8A8_UNORM;
    VkImageCreateInfo image_info = {.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO,
                                    .imageType = VK_IMAGE_TYPE_2D,
                                    .format = format,
                                    .extent = {SIZE_PX, SIZE_PX, 1},
                                    .mipLevels = 1,
                                    .arrayLayers = 1,
                                    .samples = VK_SAMPLE_COUNT_1_BIT,
                                    .tiling = VK_IMAGE_TILING_OPTIMAL,
                                    .usage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT |
                                             VK_IMAGE_USAGE_TRANSFER_SRC_BIT,
                                    .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED};
    VkImage image;
    CHECK_VK(vkCreateImage(gpu->device, &image_info, NULL, &image));
    VkMemoryRequirements needs;
    vkGetImageMemoryRequirements(gpu->device, image, &needs);
    VkMemoryAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                  .allocationSize = needs.size,
                                  .memoryTypeIndex = memory_type(gpu, needs.memoryTypeBits, 0)};
    VkDeviceMemory image_memory;
    CHECK_VK(vkAllocateMemory(gpu->device, &alloc, NULL, &image_memory));
    CHECK_VK(vkBindImageMemory(gpu->device, image, image_memory, 0));
    VkImageViewCreateInfo view_info = {.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO,
                                       .image = image,
                                       .viewType = VK_IMAGE_VIEW_TYPE_2D,
                                       .format = format,
                                       .subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1}};
    VkImageView view;
    CHECK_VK(vkCreateImageView(gpu->device, &view_info, NULL, &view));

    VkAttachmentDescription attachment = {.format = format,
                                          .samples = VK_SAMPLE_COUNT_1_BIT,
                                          .loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR,
                                          .storeOp = VK_ATTACHMENT_STORE_OP_STORE,
                                          .stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
                                          .stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
                                          .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
                                          .finalLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL};
    VkAttachmentReference reference = {0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
    VkSubpassDescription subpass = {.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS,
                                    .colorAttachmentCount = 1,
                                    .pColorAttachments = &reference};
    VkRenderPassCreateInfo pass_info = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO,
                                        .attachmentCount = 1,
                                        .pAttachments = &attachment,
                                        .subpassCount = 1,
                                        .pSubpasses = &subpass};
    VkRenderPass pass;
    CHECK_VK(vkCreateRenderPass(gpu->device, &pass_info, NULL, &pass));
    VkFramebufferCreateInfo framebuffer_info = {.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO,
                                                .renderPass = pass,
                                                .attachmentCount = 1,
                                                .pAttachments = &view,
                                                .width = SIZE_PX,
                                                .height = SIZE_PX,
                                                .layers = 1};
    VkFramebuffer framebuffer;
    CHECK_VK(vkCreateFramebuffer(gpu->device, &framebuffer_info, NULL, &framebuffer));

    VkPipelineShaderStageCreateInfo stages[2] = {
        {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
         .stage = VK_SHADER_STAGE_VERTEX_BIT,
         .module = shader(gpu, vk_pattern_vert, sizeof(vk_pattern_vert)),
         .pName = "main"},
        {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
         .stage = VK_SHADER_STAGE_FRAGMENT_BIT,
         .module = shader(gpu, vk_pattern_frag, sizeof(vk_pattern_frag)),
         .pName = "main"},
    };
    VkPipelineVertexInputStateCreateInfo vertex_input = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO};
    VkPipelineInputAssemblyStateCreateInfo assembly = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO,
        .topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST};
    /* The triangle covers the viewport; viewport and scissor make it the centre square. */
    VkViewport viewport = {16.0f, 16.0f, 32.0f, 32.0f, 0.0f, 1.0f};
    VkRect2D scissor = {{16, 16}, {32, 32}};
    VkPipelineViewportStateCreateInfo viewport_state = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO,
        .viewportCount = 1,
        .pViewports = &viewport,
        .scissorCount = 1,
        .pScissors = &scissor};
    VkPipelineRasterizationStateCreateInfo raster = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO,
        .polygonMode = VK_POLYGON_MODE_FILL,
        .cullMode = VK_CULL_MODE_NONE,
        .frontFace = VK_FRONT_FACE_COUNTER_CLOCKWISE,
        .lineWidth = 1.0f};
    VkPipelineMultisampleStateCreateInfo multisample = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO,
        .rasterizationSamples = VK_SAMPLE_COUNT_1_BIT};
    VkPipelineColorBlendAttachmentState blend_attachment = {.colorWriteMask = 0xf};
    VkPipelineColorBlendStateCreateInfo blend = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO,
        .attachmentCount = 1,
        .pAttachments = &blend_attachment};
    VkPipelineLayoutCreateInfo layout_info = {.sType =
                                                  VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    VkPipelineLayout layout;
    CHECK_VK(vkCreatePipelineLayout(gpu->device, &layout_info, NULL, &layout));
    VkGraphicsPipelineCreateInfo pipeline_info = {
        .sType = VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO,
        .stageCount = 2,
        .pStages = stages,
        .pVertexInputState = &vertex_input,
        .pInputAssemblyState = &assembly,
        .pViewportState = &viewport_state,
        .pRasterizationState = &raster,
        .pMultisampleState = &multisample,
        .pColorBlendState = &blend,
        .layout = layout,
        .renderPass = pass};
    VkPipeline pipeline;
    CHECK_VK(
        vkCreateGraphicsPipelines(gpu->device, VK_NULL_HANDLE, 1, &pipeline_info, NULL, &pipeline));

    struct buffer readback;
    make_buffer(gpu, SIZE_PX * SIZE_PX * 4, VK_BUFFER_USAGE_TRANSFER_DST_BIT, &readback);
    memset(readback.mapped, 0, SIZE_PX * SIZE_PX * 4);
    VkCommandBuffer commands = begin_commands(gpu);
    VkClearValue clear = {.color = {.float32 = {0.0f, 0.0f, 1.0f, 1.0f}}};
    VkRenderPassBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO,
                                   .renderPass = pass,
                                   .framebuffer = framebuffer,
                                   .renderArea = {{0, 0}, {SIZE_PX, SIZE_PX}},
                                   .clearValueCount = 1,
                                   .pClearValues = &clear};
    vkCmdBeginRenderPass(commands, &begin, VK_SUBPASS_CONTENTS_INLINE);
    vkCmdBindPipeline(commands, VK_PIPELINE_BIND_POINT_GRAPHICS, pipeline);
    vkCmdDraw(commands, 3, 1, 0, 0);
    vkCmdEndRenderPass(commands);
    VkBufferImageCopy copy = {.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                              .imageExtent = {SIZE_PX, SIZE_PX, 1}};
    vkCmdCopyImageToBuffer(commands, image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, readback.buffer,
                           1, &copy);
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(commands, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                         &barrier, 0, NULL, 0, NULL);
    submit_and_wait(gpu, commands);
    const uint32_t *pixels = readback.mapped;
    uint32_t wrong = 0, first = 0;
    for (uint32_t i = 0; i < SIZE_PX * SIZE_PX; i++) {
        if (pixels[i] != expected_pixel(i % SIZE_PX, i / SIZE_PX) && wrong++ == 0) {
            first = i;
        }
    }
    if (wrong) {
        printf("NEEP: vk-render %u pixels wrong, first (%u,%u): 0x%08x\n", wrong, first % SIZE_PX,
               first / SIZE_PX, pixels[first]);
    } else {
        printf("NEEP: vk-render ok\n");
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes `size` bytes into `dst` `rounds` times; returns bytes per second. */
static double write_bandwidth(void *dst, size_t size, int rounds)
{
    double start = now_s();
    for (int i = 0; i < rounds; i++) {
        memset(dst, i, size);
    }
    return (double)size * rounds / (now_s() - start);
}

/* An empty submit signalling `fence`, its wait, and the reset that lets the next reuse it. */
static void empty_submit_round_trip(struct gpu *gpu, VkFence fence)
{
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO};
    CHECK_VK(vkQueueSubmit(gpu->queue, 1, &submit, fence));
    CHECK_VK(vkWaitForFences(gpu->device, 1, &fence, VK_TRUE, UINT64_MAX));
    CHECK_VK(vkResetFences(gpu->device, 1, &fence));
}

static void run_bench(struct gpu *gpu, int rounds)
{
    VkFenceCreateInfo fence_info = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence fence;
    CHECK_VK(vkCreateFence(gpu->device, &fence_info, NULL, &fence));
    empty_submit_round_trip(gpu, fence); /* warm up */
    double start = now_s();
    for (int i = 0; i < rounds; i++) {
        empty_submit_round_trip(gpu, fence);
    }
    printf("NEEP: vk-bench submit-roundtrip-us %.1f\n", (now_s() - start) / rounds * 1e6);
    vkDestroyFence(gpu->device, fence, NULL);
    const size_t size = 32u << 20;
    struct buffer mapped;
    make_buffer(gpu, size, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, &mapped);
    void *own = malloc(size);
    memset(own, 0, size); /* fault it in, as the mapping was by the first pass below */
    write_bandwidth(mapped.mapped, size, 1);
    double mapped_bw = write_bandwidth(mapped.mapped, size, 8);
    double own_bw = write_bandwidth(own, size, 8);
    printf("NEEP: vk-bench mapped-write-mbps %.0f own-write-mbps %.0f\n", mapped_bw / 1e6,
           own_bw / 1e6);
    free(own);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct gpu gpu;
    open_gpu(&gpu);
    run_compute(&gpu);
    run_render(&gpu);
    if (argc > 2 && strcmp(argv[1], "bench") == 0) {
        run_bench(&gpu, atoi(argv[2]));
    }
    vkDeviceWaitIdle(gpu.device);
    printf("NEEP: vk-done\n");
    return 0;
}
