#version 450
// Every word of the buffer becomes 3 * word + 7.
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer Data { uint words[]; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    words[i] = words[i] * 3u + 7u;
}
