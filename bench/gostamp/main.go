// gostamp STAMP.png INPUT.jpg OUTPUT.jpg - the original Go sample's job,
// standard library only: decode the JPEG, copy it into an RGBA image, draw
// the stamp at native size flush bottom-right with draw.Over, encode JPEG q90.
package main

import (
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"os"
)

func load(path string, dec func(f *os.File) (image.Image, error)) image.Image {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	img, err := dec(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, path+":", err)
		os.Exit(1)
	}
	return img
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gostamp STAMP.png INPUT.jpg OUTPUT.jpg")
		os.Exit(2)
	}
	stamp := load(os.Args[1], func(f *os.File) (image.Image, error) { return png.Decode(f) })
	photo := load(os.Args[2], func(f *os.File) (image.Image, error) { return jpeg.Decode(f) })
	b := photo.Bounds()
	dst := image.NewRGBA(b)
	draw.Draw(dst, b, photo, b.Min, draw.Src)
	sb := stamp.Bounds()
	at := image.Rect(b.Max.X-sb.Dx(), b.Max.Y-sb.Dy(), b.Max.X, b.Max.Y)
	draw.Draw(dst, at, stamp, sb.Min, draw.Over)
	out, err := os.Create(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := jpeg.Encode(out, dst, &jpeg.Options{Quality: 90}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := out.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
