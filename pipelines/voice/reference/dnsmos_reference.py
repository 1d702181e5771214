"""DNSMOS P.835 reference scores for pipelines/voice/tests/mos.rs: ONNX Runtime (Python) on the
same windows speechmos 0.0.1.1 cuts (9.01 s, hop 1 s, short audio doubled) and its polynomials.

    python -m pip install --target /tmp/ort onnxruntime==1.31.1 numpy
    infra/fetch-models.sh dnsmos
    PYTHONPATH=/tmp/ort python pipelines/voice/reference/dnsmos_reference.py ~/.cache/avatar/models/dnsmos/sig_bak_ovr.onnx
"""
import numpy as np, onnxruntime as ort, sys, wave
sess = ort.InferenceSession(sys.argv[1])
def lcg_signal(n):
    seed = 7; out = np.zeros(n, dtype=np.float32)
    for i in range(n):
        seed = (seed * 1664525 + 1013904223) & 0xffffffff
        noise = ((seed >> 8) / (1 << 24) - 0.5) * 0.05
        t = i / 16000
        out[i] = 0.3*np.sin(2*np.pi*150*t)*(0.5+0.5*np.sin(2*np.pi*3*t)) + noise
    return out
def run(audio):
    fs=16000; L=int(9.01*fs)
    while len(audio) < L: audio = np.append(audio, audio)
    hops = int(np.floor(len(audio)/fs) - 9.01) + 1
    p_ovr = np.poly1d([-0.06766283, 1.11546468, 0.04602535]); p_sig = np.poly1d([-0.08397278, 1.22083953, 0.0052439]); p_bak = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
    r=[]
    for i in range(hops):
        seg = audio[int(i*fs): int((i+9.01)*fs)]
        if len(seg) < L: continue
        s,b,o = sess.run(None, {'input_1': seg.astype('float32')[None,:]})[0][0]
        r.append((p_sig(s), p_bak(b), p_ovr(o), s, b, o))
    return np.mean(np.array(r), axis=0)
for n in [16000*3, 16000*11]:
    print(n, [round(float(x), 6) for x in run(lcg_signal(n))])
