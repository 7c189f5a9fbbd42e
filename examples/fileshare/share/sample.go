package share

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// SampleFile is one file of the generated sample library.
type SampleFile struct {
	Rel  string // path inside the library, '/'-separated
	Size int64
}

var sampleAlbums = []struct {
	artist, album string
	songs         []string
}{
	{"김광석", "다시 부르기", []string{"서른 즈음에", "이등병의 편지", "사랑했지만", "거리에서", "흐린 가을 하늘에 편지를 써", "먼지가 되어"}},
	{"서태지와 아이들", "1집", []string{"난 알아요", "환상 속의 그대", "이 밤이 깊어가지만", "너와 함께한 시간 속에서"}},
	{"아이유", "Palette", []string{"팔레트", "밤편지", "이름에게", "사랑이 잘", "좋은 날"}},
	{"이문세", "4집", []string{"난 아직 모르잖아요", "그녀의 웃음소리뿐", "사랑이 지나가면", "광화문 연가"}},
	{"자우림", "Jaurim Vol.1", []string{"헤이 헤이 헤이", "일탈", "매직 카펫 라이드"}},
	{"Radiohead", "OK Computer", []string{"Airbag", "Paranoid Android", "Karma Police", "No Surprises", "Lucky", "Exit Music (For a Film)"}},
	{"Nirvana", "Nevermind", []string{"Smells Like Teen Spirit", "In Bloom", "Come as You Are", "Lithium", "Polly"}},
	{"Björk", "Homogenic", []string{"Hunter", "Jóga", "Bachelorette", "All Is Full of Love"}},
	{"Daft Punk", "Discovery", []string{"One More Time", "Aerodynamic", "Digital Love", "Harder, Better, Faster, Stronger"}},
	{"Miles Davis", "Kind of Blue", []string{"So What", "Freddie Freeloader", "Blue in Green", "All Blues"}},
	{"The Beatles", "Abbey Road", []string{"Come Together", "Something", "Here Comes the Sun", "Octopus's Garden"}},
	{"Buena Vista Social Club", "Buena Vista Social Club", []string{"Chan Chan", "Dos Gardenias", "El Cuarto de Tula"}},
}

var sampleDocs = []string{
	"Books/Alice's Adventures in Wonderland - Lewis Carroll.epub",
	"Books/Moby-Dick - Herman Melville.epub",
	"Books/The Art of Computer Programming Vol 1.pdf",
	"Books/구운몽 - 김만중.pdf",
	"Books/홍길동전.txt",
	"Books/Structure and Interpretation of Computer Programs.pdf",
	"Documents/회의록 2024-03-14.hwp",
	"Documents/이력서_홍길동.docx",
	"Documents/Quarterly report Q3.xlsx",
	"Documents/Thesis draft v7 FINAL (2).docx",
	"Documents/여행 계획표.xlsx",
	"Software/ubuntu-24.04-desktop-amd64.iso",
	"Software/vlc-3.0.21-win64.exe",
	"Software/알집 설치.exe",
	"Videos/Big Buck Bunny (2008).mp4",
	"Videos/Sintel (2010) 1080p.mkv",
	"Videos/한강 야경 타임랩스.mp4",
	"Videos/Night of the Living Dead (1968).avi",
}

var samplePhotoSets = []string{"제주도 여행", "Paris 2019", "졸업식", "Birthday party", "한라산 등반", "Kyoto autumn"}

// SampleLibrary lists a library of a few hundred files with real-looking
// names, some in Korean: albums of songs, books, documents, programs, videos
// and photo sets. The same seed gives the same list. A few large files (the
// videos and the disc image, several MiB each) make swarm downloads visible.
func SampleLibrary(seed uint64) []SampleFile {
	rng := rand.New(rand.NewPCG(seed, 0x736f726962616461))
	var files []SampleFile
	add := func(rel string, size int64) { files = append(files, SampleFile{Rel: rel, Size: size}) }
	for _, a := range sampleAlbums {
		for i, s := range a.songs {
			add(fmt.Sprintf("Music/%s/%s/%02d - %s.mp3", a.artist, a.album, i+1, s), 24<<10+rng.Int64N(96<<10))
		}
	}
	for _, d := range sampleDocs {
		size := 16<<10 + rng.Int64N(128<<10)
		switch KindOf(d) {
		case "video", "program":
			if filepath.Ext(d) == ".iso" || filepath.Ext(d) == ".mp4" || filepath.Ext(d) == ".mkv" {
				size = 4<<20 + rng.Int64N(4<<20)
			}
		}
		add(d, size)
	}
	for _, set := range samplePhotoSets {
		for i := 1; len(files) < 330 && i <= 45; i++ {
			ext := "jpg"
			if i%9 == 0 {
				ext = "png"
			}
			add(fmt.Sprintf("Photos/%s/%s %03d.%s", set, set, i, ext), 8<<10+rng.Int64N(40<<10))
		}
	}
	return files
}

// WriteSample writes files under dir. A file's bytes depend only on its path
// and size, so every peer that writes the same sample file holds the same
// content (and content ID).
func WriteSample(dir string, files []SampleFile) error {
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if fi, err := os.Stat(p); err == nil && fi.Size() == f.Size {
			continue
		}
		if err := writeSampleFile(p, f); err != nil {
			return fmt.Errorf("share: write sample %s: %w", f.Rel, err)
		}
	}
	return nil
}

func writeSampleFile(p string, f SampleFile) error {
	seed := sha256.Sum256([]byte(f.Rel))
	src := rand.NewChaCha8(seed)
	out, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(out, src, f.Size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
