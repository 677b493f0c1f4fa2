package data

import (
	"strings"
	"testing"
)

func TestParseABAWVA(t *testing.T) {
	in := "\ufeffarousal, valence\r\n0.389,0.602\r\n-5,-5\r\n0.1,-5\r\n-1,1\r\n\r\n\n"
	l, err := ParseABAWBytes([]byte(in), "VA_Set/Train_Set/1-30.txt", TaskVA)
	if err != nil {
		t.Fatal(err)
	}
	// columns read by name: valence first whatever the file's order
	want := [][2]float32{{0.602, 0.389}, {-5, -5}, {-5, -5}, {1, -1}}
	if l.Len() != 4 || l.NumValid() != 2 {
		t.Fatalf("len %d valid %d: %v", l.Len(), l.NumValid(), l.VA)
	}
	for k, w := range want {
		if l.VA[k] != w {
			t.Fatalf("frame %d: %v, want %v", k+1, l.VA[k], w)
		}
	}
	if l.Valid(1) || l.Valid(2) || !l.Valid(0) || l.Valid(9) {
		t.Fatal("validity wrong")
	}
}

func TestParseABAWEXPRAndAU(t *testing.T) {
	l, err := ParseABAWBytes([]byte("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n4\n-1\n7\n"), "e.txt", TaskEXPR)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Columns) != 8 || l.Columns[7] != "Other" || l.EXPR[0] != 4 || l.EXPR[1] != -1 || l.EXPR[2] != 7 || l.NumValid() != 2 {
		t.Fatalf("%+v", l)
	}
	l, err = ParseABAWBytes([]byte("AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25\n0,0,0,0,1,0,0,0\n-1,-1,-1,-1,-1,-1,-1,-1\n1, 1,0,0,0,0,0,1\n"), "a.txt", TaskAU)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 3 || l.AU[0][4] != 1 || l.AU[1][0] != -1 || l.AU[2][1] != 1 || l.Valid(1) || !l.Valid(2) {
		t.Fatalf("%+v", l.AU)
	}
}

// Every malformed input is one error naming the file and line.
func TestParseABAWErrors(t *testing.T) {
	for _, c := range []struct {
		task ABAWTask
		in   string
		want string
	}{
		{TaskVA, "", "x.txt: empty file"},
		{TaskVA, "valence,dominance\n0,0\n", "x.txt line 1: header \"valence,dominance\""},
		{TaskVA, "valence,arousal\n0.1\n", "x.txt line 2: 1 value(s)"},
		{TaskVA, "valence,arousal\n0.1,0.2\n1.7,0\n", "x.txt line 3: valence 1.7 is outside [-1, 1]"},
		{TaskVA, "valence,arousal\nnan,0\n", "x.txt line 2: valence \"nan\" is not a number"},
		{TaskVA, "valence,arousal\n0,0\n\n0,0\n", "x.txt line 3: blank line before the last row"},
		{TaskEXPR, "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n7\n", "x.txt line 2: expression 7 is outside 0..6"},
		{TaskEXPR, "Neutral,Anger\n1.5\n", "x.txt line 2: expression \"1.5\" is not an integer"},
		{TaskEXPR, "0\n1\n", "x.txt line 1: header \"0\""},
		{TaskEXPR, "Neutral,neutral\n0\n", "names column neutral twice"},
		{TaskAU, "AU1,AU2\n0,2\n", "x.txt line 2: AU2 = 2, want 0, 1 or -1"},
		{TaskAU, "AU1,AU2\n0,1,1\n", "x.txt line 2: 3 value(s)"},
		{TaskAU, "valence,arousal\n0,1\n", "want AU names"},
		{TaskAU, "AU1,\n0,1\n", "empty column name"},
		{TaskAU, "AU1\n" + strings.Repeat("0", 70000) + "\n", "x.txt line 2: line longer than"},
	} {
		_, err := ParseABAWBytes([]byte(c.in), "x.txt", c.task)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: error %v, want it to contain %q", c.task, c.in[:min(len(c.in), 40)], err, c.want)
		}
	}
}

// FuzzParseABAW: no input makes the parser panic, and what it accepts
// obeys the format's invariants. The seed corpus below runs in go test.
func FuzzParseABAW(f *testing.F) {
	seeds := []string{
		"valence,arousal\n0.602,0.389\n-5,-5\n",
		"arousal,valence\r\n0,1\r\n",
		"Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n4\n-1\n0\n",
		"AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25\n0,0,0,0,1,0,0,0\n-1,-1,-1,-1,-1,-1,-1,-1\n",
		"valence,arousal\n1e400,0\n",
		"\ufeffAU1\n1\n\n\n",
		"Neutral,Anger\n\n1\n",
		",\n,\n",
	}
	for _, s := range seeds {
		for task := range 3 {
			f.Add([]byte(s), uint8(task))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, task uint8) {
		tk := ABAWTask(task % 3)
		l, err := ParseABAWBytes(b, "fuzz.txt", tk)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.txt") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if l.Task != tk || len(l.Columns) == 0 {
			t.Fatalf("task %v columns %v", l.Task, l.Columns)
		}
		for k := 0; k < l.Len(); k++ {
			switch tk {
			case TaskVA:
				v := l.VA[k]
				inv := v[0] == ABAWInvalidVA
				if inv != (v[1] == ABAWInvalidVA) || (!inv && (v[0] < -1 || v[0] > 1 || v[1] < -1 || v[1] > 1)) {
					t.Fatalf("frame %d: VA %v", k, v)
				}
			case TaskEXPR:
				if e := l.EXPR[k]; e < -1 || int(e) >= len(l.Columns) {
					t.Fatalf("frame %d: EXPR %d of %d classes", k, e, len(l.Columns))
				}
			case TaskAU:
				if len(l.AU[k]) != len(l.Columns) {
					t.Fatalf("frame %d: %d AUs for %d columns", k, len(l.AU[k]), len(l.Columns))
				}
				for _, a := range l.AU[k] {
					if a < -1 || a > 1 {
						t.Fatalf("frame %d: AU value %d", k, a)
					}
				}
			}
		}
	})
}
