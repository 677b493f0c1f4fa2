package synth

import "testing"

// BenchmarkGenerateImages64 times 1000 still 64×64 images (all cores).
func BenchmarkGenerateImages64(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Generate(Config{N: 1000, Seed: int64(i), Balanced: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerateClips64 times 100 16-frame 64×64 clips (all cores).
func BenchmarkGenerateClips64(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Generate(Config{N: 100, Frames: 16, Seed: int64(i), Balanced: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerateImages112 times 1000 still 112×112 images (all cores).
func BenchmarkGenerateImages112(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Generate(Config{N: 1000, Size: 112, Seed: int64(i), Balanced: true}); err != nil {
			b.Fatal(err)
		}
	}
}
